"""The environment's own error paths: a missing component, a refused or unreachable Toxiproxy."""

from __future__ import annotations

import pytest

import tests.fixtures as fixtures
from steadfetch.chaos.env.binaries import ComponentMissing, find_binary
from steadfetch.chaos.env.toxiproxy import ToxiproxyAPI, ToxiproxyError, ToxiproxyServer
from steadfetch.worker.redis_server import free_port


def _missing() -> None:
    raise ComponentMissing("redis-server not found: apt-get install redis-server")


def test_missing_component_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install redis-server"):
        fixtures.require(_missing)


def test_missing_component_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixtures, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true and a required component is missing"):
        fixtures.require(_missing)


def test_env_override_must_be_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADFETCH_REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(ComponentMissing, match="STEADFETCH_REDIS_SERVER=/nonexistent"):
        find_binary("redis-server", "STEADFETCH_REDIS_SERVER", "install it")


def test_binary_not_found_names_the_remedy() -> None:
    with pytest.raises(ComponentMissing, match=r"no-such-binary not found.*do this"):
        find_binary("no-such-binary", "STEADFETCH_NO_SUCH", "do this")


def test_toxiproxy_refusal_is_raised_with_status(toxiproxy_server: ToxiproxyServer) -> None:
    # toxiproxy-python alone would not raise on every non-2xx answer; the wrapper must.
    with pytest.raises(ToxiproxyError, match="HTTP 404"):
        toxiproxy_server.api._call("GET", "/proxies/no-such-proxy")
    api = toxiproxy_server.api
    proxy = api.create_proxy("p", f"127.0.0.1:{free_port()}", "127.0.0.1:1")
    with pytest.raises(ToxiproxyError, match="HTTP 409"):
        api.create_proxy("p", f"127.0.0.1:{free_port()}", "127.0.0.1:1")
    with pytest.raises(ToxiproxyError, match="HTTP 400"):
        proxy.add_toxic("no_such_toxic_type")


def test_unreachable_toxiproxy_api_is_an_error_not_a_hang() -> None:
    api = ToxiproxyAPI("127.0.0.1", free_port())
    with pytest.raises(ToxiproxyError, match=r"127\.0\.0\.1"):
        api.version()


def test_two_servers_in_one_process_do_not_share_an_address(
    toxiproxy_server: ToxiproxyServer,
) -> None:
    # toxiproxy-python keeps its API address in a class-level global; the wrapper sets it per call.
    with ToxiproxyServer() as other:
        other.api.create_proxy("only-on-other", f"127.0.0.1:{free_port()}", "127.0.0.1:1")
        assert "only-on-other" in other.api.proxies()
        assert "only-on-other" not in toxiproxy_server.api.proxies()
