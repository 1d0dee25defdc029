"""The native engine's memory under load: no prompt cache in RAM unless asked, and two malloc
arenas, so a long-running llama-server's RSS stays bounded (veclut soak found it growing by
gigabytes; docs/soak.md). Checked on the argv and environment `veclut serve` builds."""

import pytest

from conftest import FIXTURE
from veclut import serve
from veclut.errors import VeclutError
from veclut.gguf_check import validate

MODEL = FIXTURE / "fixture-tq2_0.gguf"


@pytest.fixture
def built(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/llama-server").touch()
    monkeypatch.setattr(serve, "profile_build_dir", lambda profile: tmp_path)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)


def _native(**options):
    return serve.native_command(serve.Options(model=MODEL, engine="native", **options), validate(MODEL))


def _flag(argv, name):
    return argv[argv.index(name) + 1]


def test_no_prompt_cache_in_ram_and_two_arenas_by_default(built):
    argv, env = _native()
    assert _flag(argv, "--cache-ram") == "0"
    assert env["MALLOC_ARENA_MAX"] == "2"


def test_a_cache_and_arenas_the_user_asks_for(built, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    argv, env = _native(cache_ram=512)
    assert _flag(argv, "--cache-ram") == "512"
    assert env["MALLOC_ARENA_MAX"] == "8"


@pytest.mark.parametrize("engine, cache_ram, phrase", [("python", 64, "--cache-ram needs --engine native"),
                                                        ("native", -1, "--cache-ram must be 0 or more")])
def test_a_wrong_cache_ram_is_one_sentence(built, engine, cache_ram, phrase):
    with pytest.raises(VeclutError, match=phrase):
        serve.command(serve.Options(model=MODEL, engine=engine, cache_ram=cache_ram))
