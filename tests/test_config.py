"""crm_core.config: sources and their precedence, and every way a setting can be wrong."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crm_core.config import Settings, load_settings
from crm_core.errors import ConfigError

SECRET = "a-secret-key-of-32-characters!!!"
POSTGRES = "postgresql+psycopg://crm@db.example/crm"


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test in an empty folder, so no ./crm.toml or ./instance of the repo leaks in."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(overrides: dict | None = None, **env: str) -> Settings:
    return load_settings(overrides, environ=env)


# -- defaults -------------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    settings = load()
    assert settings.instance_path == tmp_path / "instance"
    assert settings.database_url == f"sqlite:///{tmp_path / 'instance' / 'crm.sqlite3'}"
    assert settings.url.get_backend_name() == "sqlite"
    assert settings.plugins is None
    assert settings.disabled_plugins == ()
    assert settings.strict_plugins is False
    assert settings.custom_attributes == {}
    assert settings.echo_sql is False
    assert settings.bulk_batch_size == 1000


def test_default_sqlite_file_lies_in_the_instance_folder(tmp_path: Path) -> None:
    settings = load(CRM_INSTANCE_PATH=str(tmp_path / "data"))
    assert settings.instance_path == tmp_path / "data"
    assert settings.url.database == str(tmp_path / "data" / "crm.sqlite3")


def test_relative_instance_path_is_made_absolute(tmp_path: Path) -> None:
    assert load(CRM_INSTANCE_PATH="var/crm").instance_path == tmp_path / "var" / "crm"


# -- precedence -------------------------------------------------------------------------


def test_precedence_defaults_toml_env_overrides(tmp_path: Path) -> None:
    write_toml(
        tmp_path / "crm.toml",
        '[crm]\nbulk_batch_size = 10\necho_sql = true\nstrict_plugins = true\n'
        'disabled_plugins = ["from_toml"]\n',
    )
    env = {"CRM_ECHO_SQL": "false", "CRM_STRICT_PLUGINS": "false", "CRM_BULK_BATCH_SIZE": "20"}

    from_toml = load()
    assert (from_toml.bulk_batch_size, from_toml.echo_sql) == (10, True)
    assert from_toml.disabled_plugins == ("from_toml",)
    assert from_toml.plugins is None  # not set anywhere: the default

    from_env = load(**env)
    assert (from_env.bulk_batch_size, from_env.echo_sql, from_env.strict_plugins) == (
        20,
        False,
        False,
    )
    assert from_env.disabled_plugins == ("from_toml",)  # the env does not set it

    overridden = load({"bulk_batch_size": 30, "strict_plugins": True}, **env)
    assert (overridden.bulk_batch_size, overridden.echo_sql, overridden.strict_plugins) == (
        30,
        False,
        True,
    )


def test_instance_crm_toml_is_read(tmp_path: Path) -> None:
    write_toml(tmp_path / "inst" / "crm.toml", "[crm]\nbulk_batch_size = 7\n")
    assert load(CRM_INSTANCE_PATH=str(tmp_path / "inst")).bulk_batch_size == 7


def test_instance_crm_toml_wins_over_the_working_directory_one(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", "[crm]\nbulk_batch_size = 1\n")
    write_toml(tmp_path / "instance" / "crm.toml", "[crm]\nbulk_batch_size = 2\n")
    assert load().bulk_batch_size == 2


def test_crm_config_names_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "etc" / "site.toml", "[crm]\nbulk_batch_size = 3\n")
    write_toml(tmp_path / "crm.toml", "[crm]\nbulk_batch_size = 1\n")
    assert load(CRM_CONFIG=str(path)).bulk_batch_size == 3
    assert load_settings(config_file=path, environ={}).bulk_batch_size == 3


def test_crm_config_naming_a_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(CRM_CONFIG=str(tmp_path / "nope.toml"))
    assert caught.value.setting == "CRM_CONFIG"


def test_toml_without_crm_table_is_read_as_top_level_keys(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", "bulk_batch_size = 5\n")
    assert load().bulk_batch_size == 5


def test_instance_path_from_toml_is_relative_to_the_file(tmp_path: Path) -> None:
    write_toml(tmp_path / "etc" / "crm.toml", '[crm]\ninstance_path = "../var"\n')
    settings = load(CRM_CONFIG=str(tmp_path / "etc" / "crm.toml"))
    assert settings.instance_path.resolve() == (tmp_path / "var").resolve()
    assert (settings.instance_path / "secret_key").is_file()


def test_env_instance_path_wins_over_toml(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", '[crm]\ninstance_path = "from-toml"\n')
    settings = load(CRM_INSTANCE_PATH=str(tmp_path / "from-env"))
    assert settings.instance_path == tmp_path / "from-env"


def test_os_environ_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BULK_BATCH_SIZE", "42")
    monkeypatch.setenv("CRM_SECRET_KEY", SECRET)
    settings = load_settings()
    assert settings.bulk_batch_size == 42
    assert settings.secret_key == SECRET


# -- database URL ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///crm.sqlite3",
        "sqlite:////var/lib/crm/crm.sqlite3",
        "sqlite://",
        "sqlite+pysqlite:///crm.sqlite3",
        POSTGRES,
        "postgresql+psycopg://crm:pw@127.0.0.1:5432/crm?sslmode=require",
    ],
)
def test_supported_database_urls(url: str) -> None:
    assert load(CRM_DATABASE_URL=url).database_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/crm", "unsupported database 'mysql'"),
        ("mysql+pymysql://root@localhost/crm", "unsupported database 'mysql'"),
        ("oracle://scott:tiger@db/crm", "unsupported database 'oracle'"),
        ("garbage", "not a database URL"),
        ("://nothing", "not a database URL"),
        ("postgresql+psycopg://crm@db:notaport/crm", "not a database URL"),
        ("postgresql://crm@db/crm", "psycopg 3"),
        ("postgres://crm@db/crm", "unsupported database 'postgres'"),
        ("postgresql+psycopg2://crm@db/crm", "psycopg 3"),
        ("postgresql+asyncpg://crm@db/crm", "psycopg 3"),
        ("sqlite+aiosqlite:///crm.sqlite3", "unsupported SQLite driver"),
    ],
)
def test_wrong_database_url_names_the_setting(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match="CRM_DATABASE_URL") as caught:
        load(CRM_DATABASE_URL=url)
    assert caught.value.setting == "CRM_DATABASE_URL"
    assert message in caught.value.message


def test_wrong_database_url_from_toml_and_overrides_is_refused_too(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", '[crm]\ndatabase_url = "mysql://x/y"\n')
    with pytest.raises(ConfigError, match="CRM_DATABASE_URL"):
        load()
    with pytest.raises(ConfigError, match="CRM_DATABASE_URL"):
        load({"database_url": "postgresql://crm@db/crm"}, CRM_DATABASE_URL=POSTGRES)


def test_unparsable_database_url_does_not_echo_a_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load(CRM_DATABASE_URL="postgresql+psycopg://crm:hunter2@db:port/crm")
    assert "hunter2" not in str(caught.value)


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    """``CRM_DATABASE_URL=${DB_URL}`` with DB_URL unset must not swap the database."""
    write_toml(
        tmp_path / "crm.toml",
        f'[crm]\ndatabase_url = "{POSTGRES}"\nstrict_plugins = true\nbulk_batch_size = 5\n'
        'plugins = ["crm_sales"]\n',
    )
    empty = {
        "CRM_DATABASE_URL": "",
        "CRM_STRICT_PLUGINS": "",
        "CRM_BULK_BATCH_SIZE": " ",
        "CRM_PLUGINS": "",
        "CRM_SECRET_KEY": "",
        "CRM_INSTANCE_PATH": "",
        "CRM_CUSTOM_ATTRIBUTES": "",
    }
    settings = load(**empty)
    assert settings.database_url == POSTGRES
    assert settings.strict_plugins is True
    assert settings.bulk_batch_size == 5
    assert settings.plugins == ("crm_sales",)
    assert settings.instance_path == tmp_path / "instance"
    assert (tmp_path / "instance" / "secret_key").is_file()
    (tmp_path / "crm.toml").unlink()
    assert load(**empty).database_url.endswith("instance/crm.sqlite3")


# -- booleans and numbers ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "on", " True "])
def test_true_booleans(text: str) -> None:
    assert load(CRM_STRICT_PLUGINS=text, CRM_ECHO_SQL=text).strict_plugins is True


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "off"])
def test_false_booleans(text: str) -> None:
    assert load(CRM_STRICT_PLUGINS=text).strict_plugins is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRM_STRICT_PLUGINS", "maybe"),
        ("CRM_STRICT_PLUGINS", "2"),
        ("CRM_ECHO_SQL", "enabled"),
    ],
)
def test_bad_boolean_names_the_setting(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(**{variable: value})
    assert caught.value.setting == variable
    assert "expected true or false" in caught.value.message


def test_bad_boolean_in_toml(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", '[crm]\necho_sql = "sometimes"\n')
    with pytest.raises(ConfigError, match="CRM_ECHO_SQL"):
        load()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("many", "expected a whole number"),
        ("1.5", "expected a whole number"),
        ("0", "must be at least 1"),
        ("-10", "must be at least 1"),
    ],
)
def test_bad_batch_size_names_the_setting(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(CRM_BULK_BATCH_SIZE=value)
    assert caught.value.setting == "CRM_BULK_BATCH_SIZE"
    assert message in caught.value.message


def test_batch_size_from_toml_must_be_an_integer(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", "[crm]\nbulk_batch_size = 2.5\n")
    with pytest.raises(ConfigError, match="CRM_BULK_BATCH_SIZE"):
        load()


# -- TOML problems --------------------------------------------------------------------


def test_unknown_toml_key_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "crm.toml", '[crm]\ndatabase_uri = "sqlite://"\n')
    with pytest.raises(ConfigError) as caught:
        load()
    assert caught.value.setting == f"{path}: database_uri"
    assert "database_url" in caught.value.message  # the known names are listed


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "crm.toml", "[crm\nbulk_batch_size = \n")
    with pytest.raises(ConfigError) as caught:
        load()
    assert caught.value.setting == str(path)
    assert "not valid TOML" in caught.value.message


def test_crm_key_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", 'crm = "yes"\n')
    with pytest.raises(ConfigError, match="must be a table"):
        load()


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load({"DATABASE_URL": "sqlite://"})
    assert caught.value.setting == "DATABASE_URL"


# -- secret key ------------------------------------------------------------------------


def test_short_secret_key_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load(CRM_SECRET_KEY="too-short")
    assert caught.value.setting == "CRM_SECRET_KEY"
    assert "at least 16 characters" in caught.value.message


def test_configured_secret_key_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    assert load(CRM_SECRET_KEY=SECRET).secret_key == SECRET
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_generated_secret_key_is_persisted_in_the_instance_folder(tmp_path: Path) -> None:
    first = load()
    key_file = tmp_path / "instance" / "secret_key"
    assert key_file.read_text(encoding="utf-8").strip() == first.secret_key
    assert len(first.secret_key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load().secret_key == first.secret_key  # the next start reads the same key
    assert [p.name for p in key_file.parent.iterdir()] == ["secret_key"]  # no temp files left


def test_each_instance_gets_its_own_generated_key(tmp_path: Path) -> None:
    one = load(CRM_INSTANCE_PATH=str(tmp_path / "one")).secret_key
    two = load(CRM_INSTANCE_PATH=str(tmp_path / "two")).secret_key
    assert one != two


def test_damaged_key_file_is_reported(tmp_path: Path) -> None:
    key_file = tmp_path / "instance" / "secret_key"
    key_file.parent.mkdir()
    key_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="damaged") as caught:
        load()
    assert caught.value.setting == "CRM_SECRET_KEY"


def test_a_key_written_meanwhile_by_another_process_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers starting together on a new instance must all end up with one key.

    Another worker writes its key after this one found no key file but before this one
    stored its own: this one must not overwrite it, and must use it.
    """
    import crm_core.config

    key_file = tmp_path / "instance" / "secret_key"
    winner = "key-of-the-other-worker-0123456789"
    real_token = crm_core.config.secrets.token_urlsafe

    def token_while_another_worker_writes(nbytes: int) -> str:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(winner, encoding="utf-8")
        return real_token(nbytes)

    monkeypatch.setattr(crm_core.config.secrets, "token_urlsafe", token_while_another_worker_writes)
    assert load().secret_key == winner
    assert key_file.read_text(encoding="utf-8") == winner
    assert [p.name for p in key_file.parent.iterdir()] == ["secret_key"]


# -- plugin lists ---------------------------------------------------------------------


def test_plugin_lists_from_env_are_comma_separated_and_normalised() -> None:
    settings = load(CRM_PLUGINS="crm-sales, CRM_Leads,,", CRM_DISABLED_PLUGINS="crm-leads")
    assert settings.plugins == ("crm_sales", "crm_leads")
    assert settings.disabled_plugins == ("crm_leads",)


def test_plugin_lists_from_toml(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", '[crm]\nplugins = ["crm-sales"]\n')
    assert load().plugins == ("crm_sales",)


def test_empty_allow_list_enables_no_plugin(tmp_path: Path) -> None:
    assert load({"plugins": []}).plugins == ()
    assert load(CRM_PLUGINS=",").plugins == ()
    write_toml(tmp_path / "crm.toml", "[crm]\nplugins = []\n")
    assert load().plugins == ()


def test_plugin_list_of_wrong_type_is_refused(tmp_path: Path) -> None:
    write_toml(tmp_path / "crm.toml", "[crm]\nplugins = 3\n")
    with pytest.raises(ConfigError, match="CRM_PLUGINS"):
        load()


# -- custom attributes ------------------------------------------------------------------


def test_custom_attributes_from_toml(tmp_path: Path) -> None:
    write_toml(
        tmp_path / "crm.toml",
        """
[crm.custom_attributes."customer.vat_id"]
type = "string"
label = "VAT ID"
required = true

[crm.custom_attributes."contact.shoe_size"]
type = "integer"
""",
    )
    assert load().custom_attributes == {
        "customer.vat_id": {"type": "string", "label": "VAT ID", "required": True},
        "contact.shoe_size": {"type": "integer"},
    }


def test_custom_attributes_from_env_as_json() -> None:
    settings = load(CRM_CUSTOM_ATTRIBUTES='{"customer.tier": {"type": "choice", '
                    '"choices": ["gold", "silver"]}}')
    assert settings.custom_attributes == {
        "customer.tier": {"type": "choice", "choices": ["gold", "silver"]}
    }


def test_custom_attributes_env_must_be_json() -> None:
    with pytest.raises(ConfigError) as caught:
        load(CRM_CUSTOM_ATTRIBUTES="customer.tier=string")
    assert caught.value.setting == "CRM_CUSTOM_ATTRIBUTES"


@pytest.mark.parametrize("value", [["customer.x"], {"customer.x": "string"}])
def test_custom_attributes_must_be_a_table_of_tables(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        load({"custom_attributes": value})
    assert caught.value.setting == "custom_attributes"


def test_settings_are_immutable() -> None:
    settings = load()
    with pytest.raises(AttributeError):
        settings.echo_sql = True  # type: ignore[misc]


def test_environment_is_not_read_when_environ_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BULK_BATCH_SIZE", "not-a-number")
    assert load().bulk_batch_size == 1000
    assert "CRM_BULK_BATCH_SIZE" in os.environ
