"""Which CPU this is: /proc/cpuinfo read defensively, the microarchitecture and the
hypervisor named as lscpu names them, each with the source that named it.

/proc/cpuinfo and sysfs are read as hostile text: a field that does not parse is absent,
free text (a model name) loses its control characters and is capped, and a name that
reaches a record (a hypervisor, a microarchitecture) comes from a table of ours, never
from the text itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from profiler.text import clean_text

__all__ = [
    "CpuId",
    "Named",
    "parse_cpuinfo",
    "cpuinfo_blocks",
    "microarchitecture_from_cpuid",
    "hypervisor",
    "peak_clock",
]


@dataclass(frozen=True)
class Named:
    """A name and where it came from (``source``), so a reader can judge it."""

    name: str | None
    source: str


@dataclass(frozen=True)
class CpuId:
    """The parts of /proc/cpuinfo that identify the CPU; None where a field is absent or
    does not parse."""

    vendor: str
    model_name: str
    family: int | None
    model: int | None
    stepping: int | None
    flags: frozenset[str]
    mhz: tuple[float, ...]
    bogomips: float | None
    arm_part: tuple[str, str] | None


def cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    """The ``key: value`` blocks of a cpuinfo text (one per logical CPU), any line that is
    not ``key: value`` skipped."""
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        block: dict[str, str] = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip():
                block.setdefault(key.strip(), value.strip())
        if block:
            blocks.append(block)
    return blocks


def _int(value: str | None) -> int | None:
    if value is None or not re.fullmatch(r"(0x[0-9a-fA-F]{1,8}|[0-9]{1,9})", value):
        return None
    return int(value, 0)


def _float(value: str | None) -> float | None:
    if value is None or not re.fullmatch(r"[0-9]{1,7}(\.[0-9]{1,9})?", value):
        return None
    return float(value)


def parse_cpuinfo(text: str) -> CpuId:
    """The CPU's identity from a /proc/cpuinfo text (x86 or ARM), whatever it holds."""
    blocks = cpuinfo_blocks(text)
    first = blocks[0] if blocks else {}
    model = clean_text(first.get("model name") or first.get("Processor") or "")
    flags = (first.get("flags") or first.get("Features") or "").split()
    arm = None
    implementer, part = first.get("CPU implementer"), first.get("CPU part")
    if _int(implementer) is not None and _int(part) is not None:
        arm = (str(implementer).lower(), str(part).lower())
        model = model or f"ARM implementer {arm[0]} part {arm[1]}"
    mhz = tuple(m for b in blocks if (m := _float(b.get("cpu MHz"))) is not None)
    return CpuId(
        vendor=clean_text(first.get("vendor_id") or implementer or "", 40) or "unknown",
        model_name=model or "unknown",
        family=_int(first.get("cpu family")),
        model=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        flags=frozenset(f for f in flags if re.fullmatch(r"[a-z0-9_.]{1,40}", f)),
        mhz=mhz,
        bogomips=_float(first.get("bogomips") or first.get("BogoMIPS")),
        arm_part=arm,
    )


# Server and desktop parts whose FMA width is known; a model outside these ranges stays
# unknown rather than being given a neighbour's peak (client Ice Lake has one AVX-512 FMA
# unit, mobile Zen 5 splits 512-bit work in halves).
_INTEL_FAMILY6 = {
    **dict.fromkeys((0x3C, 0x3F, 0x45, 0x46), "haswell"),
    **dict.fromkeys((0x3D, 0x47, 0x4F, 0x56), "broadwell"),
    **dict.fromkeys((0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6), "skylake"),
    **dict.fromkeys((0x6A, 0x6C), "icelake"),
    **dict.fromkeys((0x8F, 0xCF), "sapphirerapids"),
}
_AMD = {  # family: ((first model, last model, name), ...)
    0x17: ((0x00, 0x2F, "zen"), (0x30, 0xFF, "zen2")),
    0x19: (
        (0x00, 0x0F, "zen3"),
        (0x10, 0x1F, "zen4"),
        (0x20, 0x5F, "zen3"),
        (0x60, 0x7F, "zen4"),
        (0xA0, 0xAF, "zen4"),
    ),  # fmt: skip
    0x1A: ((0x00, 0x1F, "zen5"), (0x40, 0x4F, "zen5")),
}


def microarchitecture_from_cpuid(vendor: str, family: int | None, model: int | None,
                                 stepping: int | None) -> str | None:  # fmt: skip
    """archspec's name for an x86 CPU from its vendor, family and model, where our table
    knows it; None otherwise."""
    if family is None or model is None:
        return None
    if vendor == "GenuineIntel" and family == 6:
        if model == 0x55:  # Skylake-SP and Cascade Lake share the model; stepping parts them
            return "cascadelake" if stepping is not None and stepping >= 5 else "skylake_avx512"
        return _INTEL_FAMILY6.get(model)
    if vendor in ("AuthenticAMD", "HygonGenuine") and family in _AMD:
        for first, last, name in _AMD[family]:
            if first <= model <= last:
                return name
    return None


def _read(root: Path, path: str) -> str:
    try:
        return (root / path).read_text(errors="replace")[:4096].strip()
    except OSError:
        return ""


# What a sysfs or DMI string says, matched in lower case, to the name lscpu prints
_DMI_NAMES = (
    ("kvm", "KVM"), ("qemu", "KVM"), ("amazon ec2", "KVM"), ("google", "KVM"),
    ("openstack", "KVM"), ("vmware", "VMware"), ("virtualbox", "VirtualBox"),
    ("innotek", "VirtualBox"), ("xen", "Xen"), ("microsoft", "Microsoft"),
    ("parallels", "Parallels"), ("bhyve", "bhyve"), ("firecracker", "KVM"),
)  # fmt: skip
_CLOCKSOURCES = {
    "kvm-clock": "KVM",
    "xen": "Xen",
    "hyperv_clocksource_tsc_page": "Microsoft",
    "hyperv_clocksource_msr": "Microsoft",
}


def _known(text: str) -> str | None:
    lowered = text.lower()
    return next((name for key, name in _DMI_NAMES if key in lowered), None)


def hypervisor(flags: frozenset[str], root: Path = Path("/")) -> Named:
    """The hypervisor this CPU runs under (``name`` None: bare metal) and the source that
    named it. The CPU's ``hypervisor`` flag says there is one; which one comes from
    /sys/hypervisor/type, DMI vendor and product, or the paravirtual clock the kernel
    found (``kvm-clock``: what lscpu reads from the CPUID vendor leaf, as the kernel saw it).
    """
    xen = _read(root, "sys/hypervisor/type")
    if xen and (name := _known(xen)):
        return Named(name, "/sys/hypervisor/type")
    if "hypervisor" not in flags:
        return Named(None, "no hypervisor flag in /proc/cpuinfo")
    for path in ("sys/class/dmi/id/sys_vendor", "sys/class/dmi/id/product_name"):
        if name := _known(_read(root, path)):
            return Named(name, f"/{path}")
    clocks = _read(root, "sys/devices/system/clocksource/clocksource0/available_clocksource")
    for clock in clocks.split():
        if clock in _CLOCKSOURCES:
            return Named(_CLOCKSOURCES[clock], f"clocksource {clock}")
    return Named("unknown", "hypervisor flag in /proc/cpuinfo; nothing names it")


# cpufreq files that give a sustained clock in kHz, best first: Intel's base frequency
# (intel_pstate), AMD's nominal one (amd-pstate); a VM usually has neither
_BASE_CLOCKS = (
    ("sys/devices/system/cpu/cpu0/cpufreq/base_frequency", "cpufreq base_frequency"),
    ("sys/devices/system/cpu/cpu0/cpufreq/amd_pstate_nominal_freq", "amd-pstate nominal"),
)


def peak_clock(cpuid: CpuId, root: Path = Path("/")) -> tuple[float | None, str]:
    """The clock (MHz) a peak is computed with, and which clock it is: a base frequency
    where cpufreq gives one (AVX-512 work often runs below it, never say more), else the
    fastest current clock /proc/cpuinfo shows (a VM's is the host's nominal clock), else
    x86's BogoMIPS / 2 (twice the clock at boot)."""
    for path, source in _BASE_CLOCKS:
        khz = _read(root, path)
        if re.fullmatch(r"[0-9]{4,8}", khz):
            return int(khz) / 1000.0, source
    if cpuid.mhz:
        return max(cpuid.mhz), "/proc/cpuinfo cpu MHz (current clock; no base frequency exposed)"
    if cpuid.bogomips and cpuid.family is not None:
        return cpuid.bogomips / 2.0, "BogoMIPS / 2"
    return None, "unknown"
