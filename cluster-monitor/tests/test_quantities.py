import pytest

from cluster_monitor.quantities import cpu_millicores, human_bytes, memory_bytes


@pytest.mark.parametrize(
    ("quantity", "millicores"),
    [("250m", 250), ("1.5", 1500), ("2", 2000), (4, 4000), ("1e3", 1_000_000), ("100u", 0.1), ("500000n", 0.5)],
)
def test_cpu_quantities_become_millicores(quantity, millicores):
    assert cpu_millicores(quantity) == pytest.approx(millicores)


@pytest.mark.parametrize(
    ("quantity", "count"),
    [
        ("512Mi", 512 * 2**20),
        ("2Gi", 2 * 2**30),
        ("1.5Gi", 3 * 2**29),
        ("128974848", 128974848),
        ("129M", 129_000_000),
        ("123Ki", 123 * 1024),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1k", 1000),
        ("1Ti", 2**40),
    ],
)
def test_memory_quantities_become_bytes(quantity, count):
    assert memory_bytes(quantity) == count


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "5Zi", "Mi", "1 Gi", "--1"])
def test_malformed_quantities_are_refused(bad):
    with pytest.raises(ValueError, match="quantity"):
        memory_bytes(bad)


def test_human_bytes_picks_a_binary_unit():
    assert human_bytes(1536 * 2**20) == {"value": 1.5, "unit": "GiB", "bytes": 1536 * 2**20}
    assert human_bytes(999) == {"value": 999.0, "unit": "B", "bytes": 999}
    assert human_bytes(2048)["unit"] == "KiB"
