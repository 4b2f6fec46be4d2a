"""The probe: made-up /proc/cpuinfo and sysfs texts (hostile ones too) parsed defensively,
the microarchitecture and hypervisor named with their source, the peak with its clock, and
this machine's real probe through the console script (piped, `--version`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from profiler.measure import cpu
from profiler.measure.probe import CpuFacts, collect_cpu, peak_f64
from profiler.text import MAX_TEXT
from tests.conftest import run_blasprof

ZEN4_VM = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14 96-Core Processor
stepping\t: 1
cpu MHz\t\t: 2600.000
flags\t\t: fpu sse2 avx avx2 fma avx512f hypervisor
bogomips\t: 5200.00

processor\t: 1
vendor_id\t: AuthenticAMD
cpu MHz\t\t: 2650.500
"""

ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd sve
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""


def test_a_zen4_vm_cpuinfo_is_read_field_by_field() -> None:
    cpuid = cpu.parse_cpuinfo(ZEN4_VM)
    assert (cpuid.vendor, cpuid.family, cpuid.model, cpuid.stepping) == ("AuthenticAMD", 25, 17, 1)
    assert cpuid.model_name == "AMD EPYC 9R14 96-Core Processor"
    assert cpuid.mhz == (2600.0, 2650.5)
    assert "hypervisor" in cpuid.flags and "avx512f" in cpuid.flags
    assert cpu.microarchitecture_from_cpuid(cpuid.vendor, cpuid.family, cpuid.model, 1) == "zen4"


def test_an_arm_cpuinfo_names_its_part_and_no_x86_family() -> None:
    cpuid = cpu.parse_cpuinfo(ARM)
    assert cpuid.arm_part == ("0x41", "0xd40")
    assert cpuid.model_name == "ARM implementer 0x41 part 0xd40"
    assert cpuid.family is None and "sve" in cpuid.flags and cpuid.bogomips == 50.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no colon here\n\x00\x01\x02",
        "cpu family\t: 25x\nmodel\t: -3\ncpu MHz\t: 1e309\nstepping: 0x\nbogomips: nan\n",
        "cpu family\t: 99999999999999999999\nmodel\t: 0xffffffffffff\ncpu MHz\t: inf\n",
        "model name\t: Evil\x1b]0;pwned\x07\x1b[31m CPU\u202e\r\nflags\t: avx $(id) `id` a;b\n",
        ":\n::\n:::\nkey:\n: value\n" * 50,
        "model name\t: " + "A" * 100_000 + "\n",
    ],
)
def test_hostile_cpuinfo_texts_give_absent_fields_not_errors(text: str) -> None:
    cpuid = cpu.parse_cpuinfo(text)
    assert cpuid.family is None or 0 <= cpuid.family < 10**9
    assert cpuid.model is None or 0 <= cpuid.model < 2**32
    assert all(0 <= m < 10**7 for m in cpuid.mhz)
    for field in (cpuid.model_name, cpuid.vendor):
        assert len(field) <= MAX_TEXT
        assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202e]", field), field
    assert all(re.fullmatch(r"[a-z0-9_.]+", f) for f in cpuid.flags)
    facts = collect_cpu(cpuinfo=text)  # the whole CPU record, from the same text
    assert facts.model and facts.clock_source


def test_the_escape_sequences_of_a_model_name_are_dropped_and_its_words_kept() -> None:
    cpuid = cpu.parse_cpuinfo("model name\t: Evil\x1b[31m CPU\x07 @ 2.0GHz\n")
    assert cpuid.model_name == "Evil [31m CPU @ 2.0GHz"


@pytest.mark.parametrize(
    ("vendor", "family", "model", "stepping", "name"),
    [
        ("GenuineIntel", 6, 0x3F, 2, "haswell"),
        ("GenuineIntel", 6, 0x4F, 1, "broadwell"),
        ("GenuineIntel", 6, 0x55, 4, "skylake_avx512"),
        ("GenuineIntel", 6, 0x55, 7, "cascadelake"),
        ("GenuineIntel", 6, 0x6A, 6, "icelake"),
        ("GenuineIntel", 6, 0x8F, 8, "sapphirerapids"),
        ("AuthenticAMD", 23, 0x01, 2, "zen"),
        ("AuthenticAMD", 23, 0x31, 0, "zen2"),
        ("AuthenticAMD", 25, 0x01, 1, "zen3"),
        ("AuthenticAMD", 25, 0x11, 1, "zen4"),
        ("AuthenticAMD", 26, 0x02, 1, "zen5"),
        ("AuthenticAMD", 26, 0x24, 0, None),  # mobile Zen 5: half-width FMA, no guess
        ("GenuineIntel", 6, 0x7E, 5, None),  # client Ice Lake: one AVX-512 FMA unit
        ("GenuineIntel", 6, None, None, None),
        ("CentaurHauls", 6, 0x0F, 1, None),
    ],
)
def test_the_family_model_table_names_only_the_parts_it_knows(
    vendor: str, family: int | None, model: int | None, stepping: int | None, name: str | None
) -> None:
    assert cpu.microarchitecture_from_cpuid(vendor, family, model, stepping) == name


def _sysfs(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


CLOCKS = "sys/devices/system/clocksource/clocksource0/available_clocksource"


@pytest.mark.parametrize(
    ("files", "flags", "name", "source"),
    [
        ({CLOCKS: "tsc kvm-clock \n"}, {"hypervisor"}, "KVM", "clocksource kvm-clock"),
        (
            {"sys/class/dmi/id/sys_vendor": "QEMU\n", CLOCKS: "tsc kvm-clock"},
            {"hypervisor"},
            "KVM",
            "/sys/class/dmi/id/sys_vendor",
        ),
        (
            {"sys/class/dmi/id/product_name": "VMware Virtual Platform\n"},
            {"hypervisor"},
            "VMware",
            "/sys/class/dmi/id/product_name",
        ),
        ({"sys/hypervisor/type": "xen\n"}, set(), "Xen", "/sys/hypervisor/type"),
        ({CLOCKS: "hyperv_clocksource_tsc_page"}, {"hypervisor"}, "Microsoft", "clocksource"),
        ({CLOCKS: "tsc hpet acpi_pm"}, set(), None, "no hypervisor flag"),
        ({CLOCKS: "tsc"}, {"hypervisor"}, "unknown", "nothing names it"),
        (
            {"sys/class/dmi/id/sys_vendor": "\x1b]0;KVM-ish\x07$(reboot)\n"},
            {"hypervisor"},
            "KVM",
            "/sys/class/dmi/id/sys_vendor",
        ),
        ({"sys/class/dmi/id/sys_vendor": "\x1b[2J`id`\n"}, {"hypervisor"}, "unknown", "flag"),
    ],
)
def test_the_hypervisor_is_named_from_a_table_with_its_source(
    tmp_path: Path, files: dict[str, str], flags: set[str], name: str | None, source: str
) -> None:
    found = cpu.hypervisor(frozenset(flags), root=_sysfs(tmp_path, files))
    assert found.name == name
    assert source in found.source


def test_this_machines_hypervisor_is_the_one_lscpu_names() -> None:
    if shutil.which("lscpu") is None:
        pytest.skip("lscpu is not installed")
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^Hypervisor vendor:\s*(\S+)", out, re.MULTILINE)
    found = cpu.hypervisor(cpu.parse_cpuinfo(Path("/proc/cpuinfo").read_text()).flags)
    assert found.name == (match.group(1) if match else None), (found, out)


BASE = "sys/devices/system/cpu/cpu0/cpufreq/base_frequency"
NOMINAL = "sys/devices/system/cpu/cpu0/cpufreq/amd_pstate_nominal_freq"


@pytest.mark.parametrize(
    ("files", "cpuinfo", "mhz", "source"),
    [
        ({BASE: "2100000\n", NOMINAL: "2400000\n"}, ZEN4_VM, 2100.0, "cpufreq base_frequency"),
        ({NOMINAL: "2400000\n"}, ZEN4_VM, 2400.0, "amd-pstate nominal"),
        ({BASE: "fast\x1b[2J\n"}, ZEN4_VM, 2650.5, "/proc/cpuinfo cpu MHz (current clock"),
        ({BASE: "99999999999\n"}, ZEN4_VM, 2650.5, "/proc/cpuinfo cpu MHz"),
        ({}, "cpu family: 6\nbogomips: 5000.00\n", 2500.0, "BogoMIPS / 2"),
        ({}, ARM, None, "unknown"),  # an ARM BogoMIPS is the timer's, not the clock
    ],
)
def test_the_peak_clock_is_the_best_clock_there_is_and_says_which(
    tmp_path: Path, files: dict[str, str], cpuinfo: str, mhz: float | None, source: str
) -> None:
    found, said = cpu.peak_clock(cpu.parse_cpuinfo(cpuinfo), root=_sysfs(tmp_path, files))
    assert found == mhz and said.startswith(source)


def test_this_machines_microarchitecture_says_who_named_it() -> None:
    from profiler.measure.probe import collect_microarchitecture

    facts = collect_cpu()
    named = collect_microarchitecture(facts)
    table = cpu.microarchitecture_from_cpuid(
        facts.vendor, facts.family, facts.model_number, facts.stepping
    )
    if named.source == "archspec":
        assert named.name
    elif table:  # archspec stopped at a generic level (or is absent): our table names it
        assert named.name == table
        assert named.source.startswith(f"family {facts.family} model {facts.model_number}")
    else:
        assert named.source in ("archspec generic level", "unknown")


def _facts(family: int, model: int, mhz: float | None) -> CpuFacts:
    return CpuFacts(
        model="AMD EPYC", vendor="AuthenticAMD", family=family, model_number=model,
        stepping=1, arm_part=None, flags=("hypervisor",), sockets=1, physical_cores=2,
        logical_cpus=2, numa_nodes=1, clock_mhz=mhz,
        clock_source="/proc/cpuinfo cpu MHz (current clock; no base frequency exposed)",
    )  # fmt: skip


def test_the_peak_says_its_clock_and_who_named_the_microarchitecture() -> None:
    arch = cpu.Named("zen4", "family 25 model 17 (archspec: x86_64_v4)")
    fpc, peak, note = peak_f64(_facts(25, 17, 2450.0), arch, cores=2)
    assert fpc == 16 and peak == pytest.approx(2 * 2.45 * 16)
    assert "2.45 GHz (/proc/cpuinfo cpu MHz" in note and "family 25 model 17" in note


def test_a_generic_microarchitecture_or_no_clock_gives_an_unknown_peak() -> None:
    generic = cpu.Named("x86_64_v4", "archspec generic level")
    fpc, peak, note = peak_f64(_facts(25, 0xF0, 2450.0), generic, cores=2)
    assert peak is None and note.startswith("unknown") and "x86_64_v4" in note
    fpc, peak, note = peak_f64(_facts(25, 17, None), cpu.Named("zen4", "archspec"), cores=2)
    assert peak is None and "clock" in note


def test_version_prints_the_installed_distributions_version(blasprof_exe: str) -> None:
    proc = run_blasprof(blasprof_exe, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"blasprof {version('blasprof')}"
    code = (
        "import sys\nfrom profiler.cli import main\nsys.argv = ['blasprof', '--version']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print(sorted(m for m in ('numpy', 'sqlalchemy', 'submitit') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


def test_the_piped_probe_is_one_unpadded_line_per_row(blasprof_exe: str, home: Path) -> None:
    proc = run_blasprof(blasprof_exe, "probe")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and not [line for line in lines if line != line.rstrip()]
    doc = json.loads(run_blasprof(blasprof_exe, "probe", "--json").stdout)
    (peak,) = [line for line in lines if line.startswith("peak ")]
    assert doc["peak_note"] in peak  # however long, not wrapped
    (hyper,) = [line for line in lines if line.startswith("hypervisor ")]
    assert (doc["hypervisor"] or "none") in hyper and doc["hypervisor_source"] in hyper
    assert doc["microarchitecture_source"]


def _rows(text: str) -> dict[str, str]:
    return {
        line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1]
        for line in text.splitlines()
        if len(line.split(maxsplit=1)) == 2
    }


def test_probe_lists_every_blas_library_with_what_it_obeys(blasprof_exe: str, home: Path) -> None:
    from profiler.blas.run import find
    from profiler.blas.search import ld_cache

    doc = json.loads(run_blasprof(blasprof_exe, "probe", "--json").stdout)
    found = {lib.label: lib for lib in find()}
    libs = {lib["label"]: lib for lib in doc["libraries"]}
    assert set(libs) == set(found) and "numpy" in libs
    for label, lib in libs.items():
        assert lib["path"] == found[label].path and lib["version"] == found[label].version
    entry = ld_cache().get("libblas.so.3")
    assert doc["libblas_so_3"] == (str(entry.resolve()) if entry else None)
    providers = [label for label, lib in libs.items() if lib["is_libblas_so_3"]]
    assert len(providers) == (1 if entry else 0)

    table = run_blasprof(blasprof_exe, "probe")
    assert table.returncode == 0, table.stderr
    rows = _rows(table.stdout)
    for label, lib in libs.items():
        row = rows[f"blas:{label}"]
        assert row.endswith(lib["path"]) and f" {lib['version']};" in row, row
        assert " > ".join(lib["variables"]) in row
    if providers:
        assert f"libblas.so.3 -> {providers[0]} (" in rows["libraries"]


def test_probe_shows_a_broken_site_library_as_one_line_and_succeeds(
    blasprof_exe: str, home: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "libblis.so.4").write_bytes(b"\x7fELF\x1b]0;title\x07 broken")
    env = {**os.environ, "BLASPROF_BLAS_PATH": str(site)}
    proc = run_blasprof(blasprof_exe, "probe", env=env)
    assert proc.returncode == 0, proc.stderr
    (row,) = [line for line in proc.stdout.splitlines() if str(site) in line]
    assert row.startswith("blas:blis ") and "unusable (worker exited 1: OSError" in row
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout


@pytest.mark.parametrize("value", ["/no/such/dir", "/tmp:/no\x1b[2J/such"])
def test_a_wrong_blas_path_is_one_line_and_exit_2(
    blasprof_exe: str, home: Path, value: str
) -> None:
    env = {**os.environ, "BLASPROF_BLAS_PATH": value}
    proc = run_blasprof(blasprof_exe, "probe", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("blasprof: error: BLASPROF_BLAS_PATH names '/no") and "\x1b" not in line
