"""The ``.nnmip`` language: parse, AST, canonical formatting."""

from nnmip.syntax.format import format_program
from nnmip.syntax.parser import parse, parse_file

__all__ = ["format_program", "parse", "parse_file"]
