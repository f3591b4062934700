"""Griffe extension for the API reference: Sphinx roles in docstrings (:class:`~neurocore.Sequential`,
:meth:`fit`, ...) become plain code spans (`Sequential`, `fit`), since mkdocstrings renders Markdown and would
otherwise print the role names. The sources keep the roles, which read well in ``help()``."""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|obj|exc):`(~?)([^`]+)`")


def _plain(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RstRoles(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)
