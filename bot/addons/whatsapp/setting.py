"""How a setting is declared: one row (variable, default, parser, bound) read from
``credentials.yml`` or the environment, validated with an error that names the variable.
The table itself is :class:`~bot.addons.whatsapp.config.WhatsAppSettings`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, get_args

from bot.addons.whatsapp.errors import ConfigurationError

ProviderName = Literal["cloud", "serpro"]

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Parser:
    """How a setting's text becomes its value.

    Attributes:
        convert: text (already stripped) to value; raises ``ValueError`` on bad text.
        expected: what the value must be, for the error message ("a number").
    """

    convert: Callable[[str], Any]
    expected: str


def _flag(text: str) -> bool:
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise ValueError(text)


def one_of(kind: Any) -> Parser:
    """A parser for one of the names of a ``Literal`` type (any case)."""
    names = get_args(kind)

    def convert(text: str) -> Any:
        if text.lower() in names:
            return text.lower()
        raise ValueError(text)

    return Parser(convert, " or ".join(f"'{name}'" for name in names))


TEXT = Parser(str, "text")
URL = Parser(lambda text: text.rstrip("/"), "a URL")
PATH = Parser(lambda text: text.strip("/"), "a path")
FLAG = Parser(_flag, "true or false")
WHOLE = Parser(int, "a number")
ID = Parser(lambda text: int(text) if text else 0, "a number")  # empty: not set
REAL = Parser(float, "a number")


@dataclass(frozen=True)
class Setting:
    """One row of the settings table (the field name is the ``credentials.yml`` key).

    Attributes:
        variable: the environment variable read when ``credentials.yml`` gives no value.
        parser: how its text becomes the value.
        at_least: the smallest number accepted (numbers only).
        required_by: the provider that cannot start without a non-empty value.
    """

    variable: str
    parser: Parser = TEXT
    at_least: float | None = None
    required_by: ProviderName | None = None

    def parse(self, text: str) -> Any:
        """The value of ``text``; raises :class:`ConfigurationError` naming the variable."""
        try:
            value = self.parser.convert(text)
        except ValueError:
            raise ConfigurationError(
                f"{self.variable} must be {self.parser.expected}, not {text!r}"
            ) from None
        if self.at_least is not None and value < self.at_least:
            raise ConfigurationError(
                f"{self.variable} must be at least {self.at_least:g}, not {text!r}"
            )
        return value


T = TypeVar("T")
SETTING: Final = "setting"


def setting(
    variable: str,
    default: T,
    parser: Parser = TEXT,
    *,
    at_least: float | None = None,
    required_by: ProviderName | None = None,
    secret: bool = False,
) -> T:
    """A settings field: one row of the table (secrets are kept out of ``repr``)."""
    row = Setting(variable, parser, at_least, required_by)
    return field(default=default, repr=not secret, metadata={SETTING: row})
