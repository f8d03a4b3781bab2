"""How a settings section is read: one parser per kind of value, one error naming every bad variable.

Each section is a pydantic-settings model whose field names are the environment variables, lower-cased
(`max_frame_bytes` is `MAX_FRAME_BYTES`). Values are parsed one way everywhere:

- numbers and durations (`*_S`, `*_MS`, `*_DAYS`): pydantic's int/float, bounds from the field;
- booleans: `1/0`, `true/false`, `yes/no`, `on/off` (any case); anything else is refused;
- lists: comma-separated, blanks dropped (`BTC, ETH,` is `("BTC", "ETH")`), never JSON;
- tokens, keys and passwords: `SecretStr`, so a repr, a log line or a status never shows them.

A blank variable means unset (the default), except for the fields a section names in `BLANK_MEANS_NONE`,
where blank is a value: `TRUSTED_PROXIES=` trusts nobody, `LOG_FILE=` writes no file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Self, TypeVar, cast

from pydantic import BeforeValidator, SecretStr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["ConfigError", "Csv", "CsvInts", "CsvSecrets", "Lowercase", "Section", "env_name", "reveal", "split_csv"]


class ConfigError(ValueError):
    """An environment variable holds a value the app cannot use; the message names every such variable."""


def split_csv(value: Any) -> Any:
    """Split a comma-separated string into its non-blank parts; leave any other value as it is."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _lowered(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# Words compared case-blind (`DATA_MODE=Demo`, `DEVICE=CUDA`): `Annotated[str, Lowercase]`.
Lowercase = BeforeValidator(_lowered)

# Comma-separated lists; NoDecode keeps pydantic-settings from trying JSON first.
Csv = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_csv)]
CsvSecrets = Annotated[tuple[SecretStr, ...], NoDecode, BeforeValidator(split_csv)]
CsvInts = Annotated[tuple[int, ...], NoDecode, BeforeValidator(split_csv)]


def env_name(field: str) -> str:
    """Return the environment variable that sets `field`."""
    return field.upper()


def reveal(secret: SecretStr | None) -> str | None:
    """Return a secret in clear for the one call that needs it (a connection, a comparison)."""
    return secret.get_secret_value() if secret is not None else None


class _EnvironSource(EnvSettingsSource):
    """The environment source of pydantic-settings, reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[Section], environ: Mapping[str, str]) -> None:
        keep_blank = settings_cls.BLANK_MEANS_NONE
        self._environ = {
            key.lower(): value for key, value in environ.items() if value.strip() or key.lower() in keep_blank
        }
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


SectionT = TypeVar("SectionT", bound="Section")


class Section(BaseSettings):
    """Base of every settings section: immutable, built directly (tests) or by `from_env` (the app)."""

    # `inf` and `nan` parse as floats but make no sense as a duration, a bound or a share.
    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=False, allow_inf_nan=False)

    # Fields for which a blank variable is a value (an empty list, no file), not "unset".
    BLANK_MEANS_NONE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Building a section never reads the process environment by itself: `from_env` is the one
        # place that does, so a test's `Settings(port=0)` means exactly that.
        return (init_settings,)

    def section(self, kind: type[SectionT]) -> SectionT:
        """This object's values for one section (`settings.section(SourcesSection)`), for the layer it configures.

        The values were validated when this object was built, so they are copied, not checked again;
        the defaults stay where they are declared, on the section's fields.
        """
        values = {name: getattr(self, name) for name in kind.model_fields}
        return cast(SectionT, kind.model_construct(**values))  # pydantic's plugin types it as the base

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        """Read every field from `environ` (the app passes `os.environ` once, at start).

        Raises:
            ConfigError: one or more variables hold unusable values; each is named with what was
                expected and what it held (secrets are not echoed).
        """
        values = _EnvironSource(cls, environ)()
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_describe_errors(cls, exc)) from None


def _describe_errors(section: type[Section], exc: ValidationError) -> str:
    """Turn pydantic's errors into `NAME must be <expected>, got <value>` lines, one per variable."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        info = section.model_fields.get(field)
        secret = info is not None and "Secret" in str(info.annotation)
        expected = str(error["msg"]).removeprefix("Value error, ").removeprefix("Input should be ")
        got = "a value that is not shown (secret)" if secret else repr(error.get("input"))
        if not field:  # a rule across variables: its message names them, and no value is echoed
            lines.append(expected)
            continue
        lines.append(f"{env_name(field)} must be {expected}, got {got}")
    return "invalid configuration: " + "; ".join(_unique(lines))


def _unique(lines: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(lines))
