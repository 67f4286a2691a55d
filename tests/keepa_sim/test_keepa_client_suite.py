"""The `keepa` package's own live tests for /product, /deal, /token (and /category,
/search) run against the simulator.

Its source distribution holds `tests/test_interface.py`, written against the live API.
The sdist is fetched at test time with pip (cached under pytest's cache directory; the
test skips, saying why, only when it cannot be had), and that one file runs in a
subprocess pytest whose conftest (below) sends the client's `requests.get` to the
simulator over real HTTP and swaps the real-world ASINs it names for catalogue ones
(and back in the answers). The tests it leaves out, and why, are `LEFT_OUT` (also in
docs/simulator.md).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import keepa
import pytest

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.keepa_sim.catalogue import BOOKS

KEY = "client-suite-key-" + "5" * 47  # a Keepa key is 64 characters
# test_deadkey's key: the simulator has it expired.
DEAD_KEY = "8ueigrvvnsp5too0atlb5f11veinerkud47p686ekr7vgr9qtj1t1tle15fffkkm"
SUITE = "tests/test_interface.py"
LEFT_OUT = {
    "test_product_finder_categories": "/query (product finder) is not simulated",
    "test_product_finder_query": "/query (product finder) is not simulated",
    "test_bestsellers": "/bestsellers is not simulated",
    "test_seller_query": "/seller is not simulated",
    "test_seller_query_list": "/seller is not simulated",
    "test_seller_query_long_list": "/seller is not simulated",
    "test_download_graph_image": "/graphimage is not simulated",
    "test_plotting": "needs matplotlib, which is not a dependency",
    "test_empty": "needs matplotlib (the untracked-ASIN rule it relies on is tested in "
    "tests/keepa_sim/test_products.py)",
}
# The real-world ASINs and codes test_interface.py names, by role.
PRODUCT_ASIN = "0593440412"  # a book with a buy box and used offers
HARD_DRIVE_ASIN = "B0088PUEPK"
DOMAIN_ASIN = "3492704794"
ISBN13 = "9780786222728"
OTHER_ASINS = ("B0060CU5DE", "B00UFMKSDW", "B0DDDD8WD6", "B0DJHC1PL8")
CONFTEST = '''
"""Written by tests/keepa_sim/test_keepa_client_suite.py: the package's tests talk to
the simulator at KEEPA_SIM_URL, with real-world ASINs swapped for catalogue ones."""
import ast
import json
import os
import types

import requests
from keepa import keepa_sync

os.environ.setdefault("KEEPAKEY", os.environ["KEEPA_SIM_KEY"])
os.environ.setdefault("WEAKKEEPAKEY", os.environ["KEEPA_SIM_KEY"])
_URL = os.environ["KEEPA_SIM_URL"]
_TO_SIM = json.loads(os.environ["KEEPA_SIM_ASINS"])
_FROM_SIM = {sim: real for real, sim in _TO_SIM.items()}
_session = requests.Session()


def _swap(items, table):
    return ",".join(table.get(item, item) for item in items.split(","))


def get(url, params=None, **kwargs):
    assert url.startswith("https://api.keepa.com/"), url
    params = dict(params or {})
    for name in ("asin", "code"):
        if name in params:
            params[name] = _swap(str(params[name]), _TO_SIM)
    response = _session.get(url.replace("https://api.keepa.com", _URL), params=params, **kwargs)
    text = response.content.decode()
    for sim, real in _FROM_SIM.items():
        text = text.replace(f'"{sim}"', f'"{real}"')
    response._content = text.encode()
    return response


keepa_sync.requests = types.SimpleNamespace(get=get)
'''


def _sdist(cache_dir: Path) -> Path:
    """keepa's sdist for the installed version, downloaded once into `cache_dir`."""
    version = keepa.__version__
    found = sorted(cache_dir.glob(f"keepa-{version}.tar.gz"))
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += [f"keepa=={version}", "-d", str(cache_dir), "--quiet"]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=180)
    except (subprocess.SubprocessError, OSError) as error:
        output = getattr(error, "stderr", b"") or b""
        pytest.skip(
            f"the keepa {version} sdist could not be downloaded ({error}): "
            f"{output.decode(errors='replace')[-300:]}"
        )
    found = sorted(cache_dir.glob(f"keepa-{version}.tar.gz"))
    if not found:
        pytest.skip(f"pip downloaded no keepa-{version}.tar.gz into {cache_dir}")
    return found[0]


def _listed_asins(suite: Path) -> list[str]:
    """The suite's PRODUCT_ASINS list (40 chairs), read from its source."""
    for node in ast.parse(suite.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PRODUCT_ASINS" for t in node.targets
        ):
            asins: list[str] = ast.literal_eval(node.value)
            return asins
    raise AssertionError(f"{suite} has no PRODUCT_ASINS list")


def _catalogue_stand_ins(sim: KeepaSimulator, chairs: list[str]) -> dict[str, str]:
    """Real-world ASIN or code -> catalogue ASIN or code, each picked for what its test
    needs (a book with used offers and a buy box; 40 distinct chairs: home products)."""
    tl = sim.app.products.timeline
    catalogue = tl.catalogue
    now_km = unix_s_to_keepa_minutes(sim.now())

    def rich_book(index: int) -> bool:
        p = catalogue.profile(index)
        state = tl.state_at(index, now_km)
        return (
            p.is_book
            and p.amazon_sells
            and p.rank_base > 0
            and p.review_count > 0
            and p.used_base_cents > 0
            and state.new > 0
            and state.used > 0
            and state.count_new + state.count_used >= 3
        )

    books = [i for i in range(catalogue.size) if rich_book(i)]
    home = [i for i in range(catalogue.size) if catalogue.root_of[i] == 1055398]
    others = [i for i in range(catalogue.size) if catalogue.root_of[i] not in (BOOKS, 1055398)]
    mapping = {PRODUCT_ASIN: catalogue.asins[books[0]], DOMAIN_ASIN: catalogue.asins[books[1]]}
    mapping[ISBN13] = catalogue.profile(books[2]).code
    mapping[HARD_DRIVE_ASIN] = catalogue.asins[others[0]]
    for real, index in zip(OTHER_ASINS, others[1:], strict=False):
        mapping[real] = catalogue.asins[index]
    for real, index in zip(chairs, home, strict=False):
        mapping[real] = catalogue.asins[index]
    return mapping


@pytest.fixture
def suite_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    cache_dir = Path(request.config.cache.mkdir("keepa-sdist"))
    sdist = _sdist(cache_dir)
    with tarfile.open(sdist) as archive:
        member = archive.getmember(f"{sdist.name.removesuffix('.tar.gz')}/{SUITE}")
        extracted = archive.extractfile(member)
        assert extracted is not None
        (tmp_path / "test_interface.py").write_bytes(extracted.read())
    (tmp_path / "conftest.py").write_text(CONFTEST)
    return tmp_path


@pytest.fixture
def sim() -> Iterator[KeepaSimulator]:
    # The suite compares answers with the wall clock ("live data"), so the simulated
    # clock starts at it; it stands still, and the plan never runs dry (no waits).
    simulator = KeepaSimulator(
        seed=5,
        refill_rate=1000,
        clock=ManualClock(time.time()),
        catalogue_size=4000,
        accept_any_key=False,
        keys=[KEY, DEAD_KEY],
    ).start()
    simulator.set_key(DEAD_KEY, "expired")
    yield simulator
    simulator.stop()


@pytest.mark.timeout(240)
def test_the_keepa_client_suite_passes_against_the_simulator(
    suite_dir: Path, sim: KeepaSimulator
) -> None:
    deselect = " or ".join(LEFT_OUT)
    env = {
        **os.environ,
        "KEEPA_SIM_URL": sim.url,
        "KEEPA_SIM_KEY": KEY,
        "KEEPA_SIM_ASINS": json.dumps(
            _catalogue_stand_ins(sim, _listed_asins(suite_dir / "test_interface.py"))
        ),
        "MPLBACKEND": "Agg",
    }
    env.pop("KEEPAKEY", None)  # never a real key: the suite talks to the simulator only
    env.pop("WEAKKEEPAKEY", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o"]
    command += ["addopts=", "--rootdir", str(suite_dir), "-k", f"not ({deselect})"]
    command += ["--junit-xml", str(suite_dir / "report.xml"), str(suite_dir)]
    result = subprocess.run(
        command, check=False, cwd=suite_dir, env=env, capture_output=True, text=True, timeout=200
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    collected = (suite_dir / "report.xml").read_text()
    # Every test of the file ran except those left out, so none was skipped unseen.
    assert 'skipped="0"' in collected, report
    assert 'failures="0"' in collected and 'errors="0"' in collected, report
    for name in LEFT_OUT:
        assert f'name="{name}"' not in collected
    assert 'name="test_productquery_days"' in collected
    assert 'name="test_not_an_asin"' in collected
