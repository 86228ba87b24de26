"""NET-11: one TOML file, documented defaults, CLI overrides, one clear error per bad key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from openigrt.cli import main
from openigrt.config import SCHEMA, RemoteAE, default_toml, load_settings
from openigrt.errors import ConfigError


def test_spec_defaults() -> None:
    s = load_settings()
    assert (s.local.ae_title, s.local.port) == ("StreamService", 58051)
    assert s.network.max_pdu_receive == 0
    assert s.network.max_pdu_send == 32768
    assert s.network.acse_timeout == 300 and s.network.dimse_timeout == 300
    assert s.network.max_associations == 1
    assert s.storage.ihe_ro_2008 is False
    assert s.storage.store_registrations and s.storage.store_markers and s.storage.store_ct_isocenters
    assert s.remote is None
    assert s.uid_root == "2.25"


def test_default_file_is_valid_toml_and_loads_to_defaults(tmp_path: Path) -> None:
    text = default_toml()
    tomllib.loads(text)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    assert load_settings(cfg) == load_settings()
    for key in SCHEMA:  # every key documented in the rendered file
        assert f"{key.dotted.split('.', 1)[1]} = " in text


def test_file_values_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[local]\nae_title = "IGRT1"\nport = 11112\n'
        '[remote]\nae_title = "TMS"\nhost = "127.0.0.1"\nport = 4242\n'
        '[[allowed]]\nae_title = "OTHER"\nhost = "127.0.0.2"\n'
        "[network]\ndimse_timeout = 12.5\n"
    )
    s = load_settings(cfg, {"local.port": "2000", "allowed": ["X@127.0.0.3"]})
    assert s.local.ae_title == "IGRT1" and s.local.port == 2000
    assert s.remote == RemoteAE("TMS", "127.0.0.1", 4242)
    assert s.network.dimse_timeout == 12.5
    assert [a.ae_title for a in s.allowed_callers()] == ["TMS", "OTHER", "X"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"local.port": "70000"}, "local.port"),
        ({"local.ae_title": "A" * 17}, "local.ae_title"),
        ({"network.dimse_timeout": "soon"}, "network.dimse_timeout"),
        ({"network.max_pdu_send": "100"}, "network.max_pdu_send"),
        ({"storage.ihe_ro_2008": "maybe"}, "storage.ihe_ro_2008"),
        ({"dicom.uid_root": "1.02"}, "dicom.uid_root"),
        ({"remote": "nohost"}, "remote"),
        ({"network.nonsense": "1"}, "network.nonsense"),
    ],
)
def test_bad_value_names_the_key(overrides: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, overrides)
    assert info.value.key == key
    assert str(info.value).startswith(f"config {key}:")


def test_cli_bad_value_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--set", "network.acse_timeout=-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "network.acse_timeout" in err and "Traceback" not in err


def test_cli_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_unexpected_exception_is_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import openigrt.cli.cmd_config as cmd

    def boom(_settings: object) -> dict[str, object]:
        raise KeyError("surprise")

    monkeypatch.setattr(cmd, "_as_dict", boom)
    assert main(["config"]) == 1
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "Traceback" not in err
    monkeypatch.setenv("OPENIGRT_TRACEBACK", "1")
    assert main(["config"]) == 1
    assert "Traceback" in capsys.readouterr().err


# ----------------------------------------------------------------------------- DICOMweb TMS ([remote] protocol)
def test_dicomweb_remote_from_file_cli_and_set(tmp_path: Path) -> None:
    from openigrt.config import DICOMWEB_KEYS, DicomWebRemote

    cfg = tmp_path / "c.toml"
    cfg.write_text('[remote]\nprotocol = "dicomweb"\nurl = "https://pacs.example.org/dicom-web/"\n'
                   'timeout = 20\nusername = "phys"\npassword = "pw"\nverify_tls = false\n')
    s = load_settings(cfg)
    assert s.remote is None and s.tms_protocol == "dicomweb"
    assert s.dicomweb == DicomWebRemote("https://pacs.example.org/dicom-web", timeout=20.0, verify_tls=False,
                                        username="phys", password="pw")
    assert "pw" not in repr(s.dicomweb) and str(s.dicomweb) == "dicomweb+https://pacs.example.org/dicom-web"
    # --remote dicomweb+URL over a DICOMweb table replaces only the URL; --set remote.KEY one key
    s = load_settings(cfg, {"remote": "dicomweb+http://127.0.0.1:8042/dicom-web", "remote.connect_timeout": "3"})
    assert (s.dicomweb.url, s.dicomweb.username, s.dicomweb.timeout, s.dicomweb.connect_timeout) == (
        "http://127.0.0.1:8042/dicom-web", "phys", 20.0, 3.0)
    # --remote AET@HOST:PORT replaces the DICOMweb TMS entirely
    s = load_settings(cfg, {"remote": "ORTHANC@127.0.0.1:4242"})
    assert s.dicomweb is None and s.remote == RemoteAE("ORTHANC", "127.0.0.1", 4242) and s.tms_protocol == "dimse"
    with pytest.raises(ConfigError, match="DICOMweb service"):
        load_settings(cfg).require_remote()
    text = default_toml()
    for key in DICOMWEB_KEYS:
        assert f"# {key.dotted.split('.', 1)[1]} = " in text


@pytest.mark.parametrize(("overrides", "key"), [
    ({"remote": "dicomweb+ftp://host/x"}, "remote.url"),
    ({"remote": "dicomweb+http://user:pw@host/x"}, "remote.url"),
    ({"remote": "dicomweb+http://host/x?a=1"}, "remote.url"),
    ({"remote": "dicomweb+http://host:99999/x"}, "remote.url"),
    ({"remote": "dicomweb+http://host/x", "remote.timeout": "0"}, "remote.timeout"),
    ({"remote": "dicomweb+http://host/x", "remote.password": "p"}, "remote.password"),
    ({"remote": "dicomweb+http://host/x", "remote.username": "u", "remote.authorization": "Bearer t"},
     "remote.authorization"),
    ({"remote": "dicomweb+https://host/x", "remote.ca_bundle": "/no/such/ca.pem"}, "remote.ca_bundle"),
    ({"remote": "dicomweb+http://host/x", "remote.ae_title": "X"}, "remote.ae_title"),
    ({"remote": "A@h:1", "remote.protocol": "smtp"}, "remote.protocol"),
])
def test_bad_dicomweb_value_names_the_key(overrides: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, overrides)
    assert info.value.key == key


def test_config_output_masks_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--remote", "dicomweb+https://h/dw", "--set", "remote.authorization=Bearer secret-token"]) == 0
    out = capsys.readouterr().out
    assert "secret-token" not in out and '"authorization": "***"' in out and '"url": "https://h/dw"' in out
