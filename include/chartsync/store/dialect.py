"""SQL functions that SQLite and PostgreSQL spell differently, written once each."""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine


def dialect_function(name: str, type_: TypeEngine, postgresql: str, sqlite: str, doc: str) -> type[FunctionElement]:
    """A one-argument SQL function: ``postgresql`` and ``sqlite`` are its SQL, ``{}`` standing for the argument."""

    def spell(template: str):
        return lambda element, compiler, **kw: template.format(compiler.process(element.clauses, **kw))

    function = type(name, (FunctionElement,), {"type": type_, "inherit_cache": True, "__doc__": doc})
    compiles(function)(spell(postgresql))
    compiles(function, "sqlite")(spell(sqlite))
    return function
