"""Every public name has a docstring, so the API reference (docs/api, generated from the docstrings by
mkdocstrings, which leaves undocumented members out) documents all of it.

Public = listed in a module's ``__all__``; for a class, every method and property it defines whose name does
not start with an underscore (``__call__`` included: calling is part of the API). A method that overrides a
documented method of a neurocore base class may rely on that docstring (the reference shows it there). A
top-level name from a module missing here fails too: add the module to MODULES and give it a page under
docs/api/.
"""
import importlib
import importlib.util
import inspect

import pytest

MODULES = ["neurocore", "neurocore.layers", "neurocore.model", "neurocore.losses", "neurocore.optim",
           "neurocore.schedules", "neurocore.callbacks", "neurocore.augment", "neurocore.datasets", "neurocore.io",
           "neurocore._runtime", "neurocore.interop", "neurocore.distributed"]
OPTIONAL = {"neurocore.sklearn": "sklearn"}   # checked when their extra is installed


def doc_of_member(cls, attr):
    """The docstring of cls.attr, or of the neurocore base-class member it overrides."""
    for base in cls.__mro__:
        if base.__module__.startswith("neurocore") and attr in vars(base):
            member = vars(base)[attr]
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if (member.__doc__ or "").strip():
                return member.__doc__
    return ""


def public_names():
    """{qualified name: a function returning its docstring}."""
    found = {}
    for module_name in MODULES + [m for m, extra in OPTIONAL.items() if importlib.util.find_spec(extra)]:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                assert obj.__name__ in MODULES, f"neurocore.{name} is a module the API reference does not cover"
                continue
            if not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            if obj.__module__ != module_name and not obj.__module__.startswith(module_name + "._"):
                # a re-export: checked where it is defined
                assert obj.__module__ in MODULES, \
                    f"{module_name}.{name} comes from {obj.__module__}, which the API reference does not cover"
                continue
            found[f"{module_name}.{name}"] = lambda obj=obj: obj.__dict__.get("__doc__") if inspect.isclass(obj) \
                else obj.__doc__
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if (attr.startswith("_") and attr != "__call__") or not (
                            inspect.isroutine(member) or isinstance(member, (property, staticmethod, classmethod))):
                        continue
                    found[f"{module_name}.{name}.{attr}"] = lambda cls=obj, attr=attr: doc_of_member(cls, attr)
    return found


NAMES = public_names()


def test_the_public_api_was_found():
    assert {"neurocore.model.Sequential", "neurocore.model.Sequential.fit", "neurocore.layers.Dense.weight",
            "neurocore.optim.SGD", "neurocore.datasets.load_digits", "neurocore._runtime.cpu_info",
            "neurocore.callbacks.EarlyStopping.__call__"} <= set(NAMES)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_public_name_has_a_docstring(name):
    assert (NAMES[name]() or "").strip(), f"{name} has no docstring: the API reference would leave it out"
