//! What the kernel reads about the CPU it runs on: vendor, family and model,
//! and the data cache sizes a core sees. Read once per process; the tile
//! size and the x86 path choice for L2-resident tensors derive from the L2
//! size (see `tile_bytes` and `cache_resident_bytes`), and the benchmarks
//! print all of it beside every result.
//!
//! x86-64 reads CPUID: the deterministic cache parameters (leaf 4 on Intel,
//! 0x8000001D on AMD and Hygon), else AMD's legacy leaves 0x80000005/6.
//! Other targets read Linux's sysfs (`/sys/devices/system/cpu/cpu0/cache`),
//! which aarch64 kernels fill from the firmware's tables when it has them.
//! A size nobody reports is `None`, and the choices fall back to the values
//! they had when they were constants.

use std::fmt;
use std::sync::OnceLock;

/// The CPU as the kernel sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// `GenuineIntel`, `AuthenticAMD`, ...; on non-x86 targets the
    /// architecture.
    pub vendor: String,
    /// The marketing name (CPUID's brand string; `/proc/cpuinfo` elsewhere).
    pub brand: String,
    /// Display family and model (x86: base plus extended fields; 0 elsewhere).
    pub family: u32,
    pub model: u32,
    /// Bytes of level-1 data, level-2 and level-3 cache; L1 and L2 are a
    /// core's own on every CPU this crate has met, L3 is shared.
    pub l1d_bytes: Option<usize>,
    pub l2_bytes: Option<usize>,
    pub l3_bytes: Option<usize>,
    /// Logical processors sharing one L2 (2 with SMT on most x86 cores).
    pub l2_shared_by: Option<usize>,
}

impl CpuInfo {
    /// The running CPU, read once.
    pub fn get() -> &'static CpuInfo {
        static INFO: OnceLock<CpuInfo> = OnceLock::new();
        INFO.get_or_init(read)
    }

    /// AMD Zen 4 (family 0x19 with AVX-512; Zen 3, the same family, has
    /// none) executes each 512-bit instruction as two 256-bit halves (AMD's
    /// Software Optimization Guide for family 19h); Intel's AVX-512 cores
    /// and Zen 5 have full 512-bit units. Printed with the CPU, so every
    /// benchmark result records it. No choice rests on it: on the Zen 4
    /// measured (2026-12-07) AVX2 ran slower than AVX-512 on every tensor
    /// above L2, and within 7% either way on L2-resident unpacked ones,
    /// where the kernel takes AVX2 as on Intel (docs/performance.md).
    pub fn avx512_in_halves(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        let avx512 = is_x86_feature_detected!("avx512f");
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        self.vendor == "AuthenticAMD" && self.family == 0x19 && avx512
    }
}

/// Bytes of one tile across all channels in the register-blocked walk:
/// pass 2 must find it in L2 beside what else the core keeps there. A
/// quarter of L2. On the 1.25 MiB L2 Intel Xeon where it was a constant
/// (256 KiB) that is 320 KiB, which picks the same tile widths for every
/// SSD tensor; on a 1 MiB Zen 4 L2, 256 KiB: 512x38x38 unpacked fp32 took
/// 0.096-0.097 ms with tiles of 256 KiB to 1 MiB and 0.107-0.110 ms with 128
/// KiB or a fifth of L2 (8 vectors per row against 4), the other elempacks
/// and fp16 unchanged (2026-12-07, docs/performance.md). Between 64 KiB
/// and 1 MiB whatever a CPU reports; 256 KiB if unknown.
/// `NCNN_L2NORM_TILE_BYTES` overrides it, for tuning on a new CPU.
pub(crate) fn tile_bytes() -> usize {
    static TILE: OnceLock<usize> = OnceLock::new();
    *TILE.get_or_init(|| {
        // For tuning on a new CPU: NCNN_L2NORM_TILE_BYTES overrides it.
        let asked = std::env::var("NCNN_L2NORM_TILE_BYTES")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok());
        asked
            .unwrap_or_else(|| CpuInfo::get().l2_bytes.map_or(256 * 1024, |l2| l2 / 4))
            .clamp(64 * 1024, 1 << 20)
    })
}

/// Tensors of at least this many bytes have pass 2 ask for the next tile's
/// rows (`prefetch`, x86's PREFETCHT1, into L2): four times L2, 4 MiB on
/// a 1 MiB Zen 4 L2. There, in three alternating runs against the same
/// code without it (2026-12-07, machine lightly loaded), the median time
/// fell to 0.76-0.98x on 512x64x64 and 256x150x150 in fp32 and fp16, 1
/// and 2 threads, elempacks 1-16 (bf16 0.74-1.05x). Below the threshold it
/// hurts: 512x38x38 elempack 16 (2.96 MB, in L3) took 128-132 us with it
/// against 74-75 without, the prefetches holding the miss buffers pass 2
/// needs (docs/performance.md).
/// 4 MiB if the L2 is unknown. Not measured on Intel; NEON and the portable
/// path do not prefetch.
pub(crate) fn prefetch_from_bytes() -> usize {
    static FROM: OnceLock<usize> = OnceLock::new();
    *FROM.get_or_init(|| CpuInfo::get().l2_bytes.map_or(4 << 20, |l2| 4 * l2))
}

/// How the register-blocked walk orders a packed blob of one position per
/// vector with `elem`-byte elements (`blocked::normalize_blocked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Each tile's pass 1, factors and pass 2 in turn (`blocked::tile`).
    Separate,
    /// Pass 2 of one tile in the same walk over the groups as pass 1 of
    /// the next (`blocked::tiles_ahead`, interleaved): for tensors larger
    /// than L2, whose loads from L3 or memory then overlap the scaling. On
    /// the Zen 4 where it was measured (2026-12-07, docs/performance.md)
    /// 512x38x38 elempack 16 took 0.77x the time of separate passes. It
    /// loses where rows lie a multiple of 4 KiB apart (512x64x64: 1.7x):
    /// they all fall in the same L1 sets, so two tiles no longer stay in L1.
    Pipelined,
    /// Pass 1 of the next tile between a tile's factors and its pass 2
    /// (`blocked::tiles_ahead`, not interleaved): for tensors in L2, whose
    /// tiles wait for the reduction, not for memory. There, 64x19x19
    /// elempack 16 took 0.72x the time of separate passes, 64x16x16 0.69x,
    /// 256x19x19 0.88x.
    LookAhead,
}

/// The walk for a packed blob of one position per vector (see [`Walk`]).
/// `NCNN_L2NORM_PIPELINE=0` asks for separate passes and `=1` for the
/// pipelined walk on every tensor, to measure one against the other.
pub(crate) fn walk(layout: &crate::layout::ChannelLayout, elem: usize) -> Walk {
    static ASKED: OnceLock<Option<Walk>> = OnceLock::new();
    let asked = *ASKED.get_or_init(|| match std::env::var("NCNN_L2NORM_PIPELINE").as_deref() {
        Ok("0") => Some(Walk::Separate),
        Ok("1") => Some(Walk::Pipelined),
        _ => None,
    });
    if let Some(asked) = asked {
        return asked;
    }
    let l2 = CpuInfo::get().l2_bytes.unwrap_or(1 << 20);
    let bytes = layout.channels() * layout.positions * elem;
    if bytes <= l2 {
        Walk::LookAhead
    } else if !(layout.group_stride * elem).is_multiple_of(4096) {
        Walk::Pipelined
    } else {
        Walk::Separate
    }
}

/// Tensors below this many bytes stay in L2 between calls (x86's choice of
/// AVX2 over AVX-512 for unpacked rows rests on it, `Forward::run_on`):
/// four fifths of L2, 1 MiB on the 1.25 MiB L2 it was measured on as a
/// constant; 1 MiB if unknown.
#[cfg(target_arch = "x86_64")]
pub(crate) fn cache_resident_bytes() -> usize {
    CpuInfo::get().l2_bytes.map_or(1 << 20, |l2| l2 / 5 * 4)
}

/// `1.25 MiB`, `32 KiB`, `-`.
fn size(bytes: Option<usize>) -> String {
    match bytes {
        None => "-".into(),
        Some(b) if b >= 1 << 20 && b % (1 << 18) == 0 => {
            format!("{} MiB", b as f64 / f64::from(1 << 20))
        }
        Some(b) => format!("{} KiB", b / 1024),
    }
}

impl fmt::Display for CpuInfo {
    /// `AMD EPYC (AuthenticAMD family 0x19 model 0x11); L1d 32 KiB, L2 1
    /// MiB per core, L3 32 MiB; AVX-512 in 256-bit halves`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.brand, self.vendor)?;
        if self.family != 0 {
            write!(f, " family {:#x} model {:#x}", self.family, self.model)?;
        }
        write!(
            f,
            "); L1d {}, L2 {} per core, L3 {}",
            size(self.l1d_bytes),
            size(self.l2_bytes),
            size(self.l3_bytes)
        )?;
        if self.avx512_in_halves() {
            write!(f, "; AVX-512 in 256-bit halves")?;
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
fn read() -> CpuInfo {
    use std::arch::x86_64::{__cpuid_count, CpuidResult};
    // `__cpuid_count` is a safe fn in the newest Rust and an unsafe one in
    // older releases the crate supports (MSRV 1.89).
    #[allow(unused_unsafe)]
    // SAFETY: every x86-64 CPU has CPUID; leaves above the maxima read
    // below are not asked for.
    let id = |leaf: u32, sub: u32| -> CpuidResult { unsafe { __cpuid_count(leaf, sub) } };
    let l0 = id(0, 0);
    let vendor: Vec<u8> = [l0.ebx, l0.edx, l0.ecx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    let vendor = String::from_utf8_lossy(&vendor).into_owned();
    let max_ext = id(0x8000_0000, 0).eax;
    let signature = if l0.eax >= 1 { id(1, 0).eax } else { 0 };
    let base_family = (signature >> 8) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((signature >> 20) & 0xff)
    } else {
        base_family
    };
    let model = if base_family >= 6 {
        ((signature >> 4) & 0xf) | (((signature >> 16) & 0xf) << 4)
    } else {
        (signature >> 4) & 0xf
    };
    let brand = if max_ext >= 0x8000_0004 {
        let bytes: Vec<u8> = (0x8000_0002..=0x8000_0004)
            .flat_map(|leaf| {
                let r = id(leaf, 0);
                [r.eax, r.ebx, r.ecx, r.edx]
            })
            .flat_map(u32::to_le_bytes)
            .take_while(|&b| b != 0)
            .collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    } else {
        "unknown x86-64 CPU".into()
    };
    let amd = vendor == "AuthenticAMD" || vendor == "HygonGenuine";
    // Deterministic cache parameters: one subleaf per cache until type 0.
    let leaf = if amd {
        // AMD has leaf 0x8000001D with the topology extensions (CPUID
        // 0x80000001 ECX bit 22).
        (max_ext >= 0x8000_001d && id(0x8000_0001, 0).ecx & (1 << 22) != 0).then_some(0x8000_001d)
    } else {
        (l0.eax >= 4).then_some(4)
    };
    let (mut l1d, mut l2, mut l3, mut l2_shared) = (None, None, None, None);
    if let Some(leaf) = leaf {
        for sub in 0..16 {
            let r = id(leaf, sub);
            let kind = r.eax & 0x1f; // 1 data, 2 instruction, 3 unified
            if kind == 0 {
                break;
            }
            let level = (r.eax >> 5) & 0x7;
            let bytes = ((r.ebx >> 22) as usize + 1)
                * (((r.ebx >> 12) & 0x3ff) as usize + 1)
                * ((r.ebx & 0xfff) as usize + 1)
                * (r.ecx as usize + 1);
            let shared = ((r.eax >> 14) & 0xfff) as usize + 1;
            match (level, kind) {
                (1, 1) => l1d = Some(bytes),
                (2, 1 | 3) => (l2, l2_shared) = (Some(bytes), Some(shared)),
                (3, 1 | 3) => l3 = Some(bytes),
                _ => {}
            }
        }
    }
    if amd && l2.is_none() && max_ext >= 0x8000_0006 {
        // Legacy leaves: L1d KiB in 0x80000005 ECX[31:24], L2 KiB in
        // 0x80000006 ECX[31:16], L3 in 512 KiB units in EDX[31:18].
        let k = |kib: u32| (kib > 0).then_some(kib as usize * 1024);
        l1d = k(id(0x8000_0005, 0).ecx >> 24);
        let r = id(0x8000_0006, 0);
        l2 = k(r.ecx >> 16);
        l3 = k((r.edx >> 18) * 512);
    }
    CpuInfo {
        vendor,
        brand,
        family,
        model,
        l1d_bytes: l1d,
        l2_bytes: l2,
        l3_bytes: l3,
        l2_shared_by: l2_shared,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn read() -> CpuInfo {
    // Linux's view of cpu0's caches: index*/{level,type,size}, size like "512K".
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let (mut l1d, mut l2, mut l3, mut l2_shared) = (None, None, None, None);
    for i in 0..8 {
        let at = dir.join(format!("index{i}"));
        let read = |f: &str| std::fs::read_to_string(at.join(f)).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        let size = size.trim();
        let bytes = match size.strip_suffix('K') {
            Some(k) => k.parse::<usize>().ok().map(|k| k * 1024),
            None => size
                .strip_suffix('M')
                .and_then(|m| m.parse::<usize>().ok())
                .map(|m| m << 20),
        };
        let shared = read("shared_cpu_list").map(|l| cpu_list_len(l.trim()));
        match (level.trim(), kind.trim()) {
            ("1", "Data") => l1d = bytes,
            ("2", "Data" | "Unified") => (l2, l2_shared) = (bytes, shared),
            ("3", "Data" | "Unified") => l3 = bytes,
            _ => {}
        }
    }
    let brand = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("CPU part"))
                .and_then(|l| {
                    let (key, value) = l.split_once(':')?;
                    let value = value.trim();
                    Some(if key.starts_with("CPU part") {
                        format!("CPU part {value}")
                    } else {
                        value.to_string()
                    })
                })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    CpuInfo {
        vendor: std::env::consts::ARCH.into(),
        brand,
        family: 0,
        model: 0,
        l1d_bytes: l1d,
        l2_bytes: l2,
        l3_bytes: l3,
        l2_shared_by: l2_shared,
    }
}

/// How many CPUs a sysfs list like `0-3,8` names.
#[cfg(not(target_arch = "x86_64"))]
fn cpu_list_len(list: &str) -> usize {
    list.split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_cpu() {
        let info = CpuInfo::get();
        println!("{info}");
        assert!(!info.vendor.is_empty() && !info.brand.is_empty());
        #[cfg(target_arch = "x86_64")]
        {
            // Every x86-64 CPU (and hypervisor) this runs on reports its
            // caches through one of the leaves read above.
            assert!(info.family >= 6, "{info:?}");
            let (l1, l2) = (info.l1d_bytes.unwrap(), info.l2_bytes.unwrap());
            assert!((16 << 10..=128 << 10).contains(&l1), "{info:?}");
            assert!((256 << 10..=8 << 20).contains(&l2) && l2 > l1, "{info:?}");
        }
        let tile = tile_bytes();
        assert!((64 << 10..=1 << 20).contains(&tile));
    }

    #[test]
    fn sizes_print_as_people_write_them() {
        assert_eq!(size(Some(1280 << 10)), "1.25 MiB");
        assert_eq!(size(Some(32 << 20)), "32 MiB");
        assert_eq!(size(Some(48 << 10)), "48 KiB");
        assert_eq!(size(None), "-");
    }
}
