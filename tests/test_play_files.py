"""What the OSCQuery server serves for the /play page, over HTTP on a real server: the page and its
files, the policy that keeps it on this host, and /play/items.json."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from timbrespace.web import STATIC

from conftest import ServerProc


def _base(server: ServerProc) -> str:
    line = next(line for line in server.lines if " ready: " in line)
    return "http://" + line.split(" http://", 1)[1].split("/", 1)[0]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), b""


def test_the_page_and_its_files_are_served_from_the_package(server: ServerProc) -> None:
    base = _base(server)
    status, headers, body = _get(base + "/play")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body == (STATIC / "play.html").read_bytes()
    # The page may load and reach nothing but this server.
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    for name, kind in (("main.js", "javascript"), ("osc.js", "javascript"), ("play.css", "text/css")):
        status, headers, body = _get(f"{base}/play/{name}")
        assert status == 200 and kind in headers["Content-Type"], name
        assert body == (STATIC / name).read_bytes()
        assert headers["Cache-Control"] == "no-cache"  # a new server's files, never a stale copy
    assert _get(base + "/play/")[0] == 200  # redirected to /play
    assert _get(base + "/play/no-such.js")[0] == 404
    assert _get(base + "/play/%2e%2e/__init__.py")[0] in (403, 404)  # nothing outside the page's folder
    # The namespace is still where it was.
    status, _, body = _get(base + "/latent?TYPE")
    assert status == 200 and json.loads(body) == {"TYPE": "ff"}


def test_items_name_the_instruments_and_place_them_and_the_presets(server: ServerProc) -> None:
    status, headers, body = _get(_base(server) + "/play/items.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    items: dict[str, Any] = json.loads(body)
    assert len(items["instruments"]) == 12 and "violin" in items["instruments"]
    with server.client() as c:
        total = c.request("/patch/list", 0, 1).params[0]
    # One point per preset, in /patch/list's order; one per instrument on the learned map.
    assert len(items["preset_points"]) == total
    assert len(items["instrument_points"]) == 12
    for x, y in items["preset_points"] + items["instrument_points"]:
        assert 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0
    # The points are spread over the map, not piled on one spot.
    xs = [p[0] for p in items["instrument_points"]]
    assert max(xs) - min(xs) > 0.25
    # A preset saved while the server runs is placed too, at the next request.
    with server.client() as c:
        c.request("/patch/save", "placed later")
        assert c.request("/patch/list", 0, 1).params[0] == total + 1
    status, _, body = _get(_base(server) + "/play/items.json")
    assert status == 200 and len(json.loads(body)["preset_points"]) == total + 1


def test_items_cut_the_learned_map_into_the_instruments_regions(server: ServerProc) -> None:
    """Each cell is the instrument the model hears most at the cell's centre, rows from y = 0 up,
    as the shipped model itself says through its public map (the timbre code at a point)."""
    import torch

    from timbrespace.models.timbre_space import TimbreSpace

    _, _, body = _get(_base(server) + "/play/items.json")
    regions = json.loads(body)["instrument_regions"]
    index, posterior = regions["index"], regions["posterior"]
    n = len(index)
    assert n > 16 and all(len(row) == n for row in index + posterior) and len(posterior) == n
    assert {i for row in index for i in row} <= set(range(12))
    assert len({i for row in index for i in row}) > 6  # the map is shared out, not one instrument's
    assert all(1 / 12 <= p <= 1.0 for row in posterior for p in row)  # the most responsible's posterior
    space = TimbreSpace.load(TimbreSpace.default_path(), device="cpu")
    # Cells at the four corners and across the middle: the orientation, and the values.
    for i, j in ((0, 0), (n - 1, 0), (0, n - 1), (n - 1, n - 1), (n // 3, n // 2), (n // 2, 2 * n // 3)):
        z = torch.as_tensor(space.map_point((i + 0.5) / n, (j + 0.5) / n), dtype=torch.float32)[None]
        with torch.inference_mode():
            q = space.model.instrument_posterior(z)[0]
        top = torch.topk(q, 2).values
        if float(top[0] - top[1]) > 1e-4:  # a cell on a border may go either way with the float sums
            assert index[j][i] == int(q.argmax()), (i, j)
        assert abs(posterior[j][i] - float(q.max())) <= 0.005 + 1e-6  # two decimals
