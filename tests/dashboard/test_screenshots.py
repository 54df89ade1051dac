"""The README images are rendered by a script from the sample snapshots."""

from __future__ import annotations

from pathlib import Path

from tests.dashboard import screenshots


def test_renders_every_image(tmp_path: Path) -> None:
    assert screenshots.main([str(tmp_path)]) == 0
    files = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert set(files) == set(screenshots.SHOTS)
    for svg in files.values():
        assert svg.startswith("<svg")
    assert "reconnecting" in files["dashboard-outage.svg"]
    assert "STALE" in files["top-connected.svg"]
    assert "reconnecting" in files["top-outage.svg"]


def test_committed_images_are_current(tmp_path: Path) -> None:
    """docs/images matches what the script renders now (rerun it after changing a renderer)."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "images"
    screenshots.render_all(tmp_path)
    for name in screenshots.SHOTS:
        assert (committed / name).read_text() == (tmp_path / name).read_text(), name
