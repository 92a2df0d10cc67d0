//! libcgroups statistics as the metrics messages containerd decodes: cgroup v1's
//! `io.containerd.cgroups.v1.Metrics` and v2's `io.containerd.cgroups.v2.Metrics`.

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::MessageField;
use libcgroups::stats::{BlkioDeviceStat, Stats};

fn stat(stats: &Stats, key: &str) -> u64 {
    stats.memory.stats.get(key).copied().unwrap_or(0)
}

fn blkio(entries: &[BlkioDeviceStat]) -> Vec<v1::BlkIOEntry> {
    entries
        .iter()
        .map(|e| v1::BlkIOEntry {
            op: e.op_type.clone().unwrap_or_default(),
            major: e.major,
            minor: e.minor,
            value: e.value,
            ..Default::default()
        })
        .collect()
}

fn entry(d: &libcgroups::stats::MemoryData) -> MessageField<v1::MemoryEntry> {
    MessageField::some(v1::MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        ..Default::default()
    })
}

/// cgroup v1 metrics.
pub fn v1_metrics(stats: &Stats, oom_kills: u64) -> v1::Metrics {
    let s = |k| stat(stats, k);
    let cpu = &stats.cpu;
    v1::Metrics {
        pids: MessageField::some(v1::PidsStat {
            current: stats.pids.current,
            limit: stats.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v1::CPUStat {
            usage: MessageField::some(v1::CPUUsage {
                total: cpu.usage.usage_total,
                kernel: cpu.usage.usage_kernel,
                user: cpu.usage.usage_user,
                per_cpu: cpu.usage.per_core_usage_total.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(v1::Throttle {
                periods: cpu.throttling.periods,
                throttled_periods: cpu.throttling.throttled_periods,
                throttled_time: cpu.throttling.throttled_time,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(v1::MemoryStat {
            cache: s("cache"),
            rss: s("rss"),
            rss_huge: s("rss_huge"),
            mapped_file: s("mapped_file"),
            dirty: s("dirty"),
            writeback: s("writeback"),
            pg_pg_in: s("pgpgin"),
            pg_pg_out: s("pgpgout"),
            pg_fault: s("pgfault"),
            pg_maj_fault: s("pgmajfault"),
            inactive_anon: s("inactive_anon"),
            active_anon: s("active_anon"),
            inactive_file: s("inactive_file"),
            active_file: s("active_file"),
            unevictable: s("unevictable"),
            hierarchical_memory_limit: s("hierarchical_memory_limit"),
            hierarchical_swap_limit: s("hierarchical_memsw_limit"),
            total_cache: s("total_cache"),
            total_rss: s("total_rss"),
            total_rss_huge: s("total_rss_huge"),
            total_mapped_file: s("total_mapped_file"),
            total_dirty: s("total_dirty"),
            total_writeback: s("total_writeback"),
            total_pg_pg_in: s("total_pgpgin"),
            total_pg_pg_out: s("total_pgpgout"),
            total_pg_fault: s("total_pgfault"),
            total_pg_maj_fault: s("total_pgmajfault"),
            total_inactive_anon: s("total_inactive_anon"),
            total_active_anon: s("total_active_anon"),
            total_inactive_file: s("total_inactive_file"),
            total_active_file: s("total_active_file"),
            total_unevictable: s("total_unevictable"),
            usage: entry(&stats.memory.memory),
            swap: entry(&stats.memory.memswap),
            kernel: entry(&stats.memory.kernel),
            kernel_tcp: entry(&stats.memory.kernel_tcp),
            ..Default::default()
        }),
        blkio: MessageField::some(v1::BlkIOStat {
            io_service_bytes_recursive: blkio(&stats.blkio.service_bytes),
            io_serviced_recursive: blkio(&stats.blkio.serviced),
            io_queued_recursive: blkio(&stats.blkio.queued),
            io_service_time_recursive: blkio(&stats.blkio.service_time),
            io_wait_time_recursive: blkio(&stats.blkio.wait_time),
            io_merged_recursive: blkio(&stats.blkio.merged),
            io_time_recursive: blkio(&stats.blkio.time),
            sectors_recursive: blkio(&stats.blkio.sectors),
            ..Default::default()
        }),
        hugetlb: stats
            .hugetlb
            .iter()
            .map(|(size, h)| v1::HugetlbStat {
                usage: h.usage,
                max: h.max_usage,
                failcnt: h.fail_count,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        memory_oom_control: MessageField::some(v1::MemoryOomControl {
            oom_kill: oom_kills,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// cgroup v2 metrics. CPU times are kept in microseconds as v2 reports them.
pub fn v2_metrics(stats: &Stats, oom_kills: u64) -> v2::Metrics {
    let s = |k| stat(stats, k);
    let cpu = &stats.cpu;
    let mut io: Vec<v2::IOEntry> = Vec::new();
    for (list, read_op) in [
        (&stats.blkio.service_bytes, true),
        (&stats.blkio.serviced, false),
    ] {
        for e in list.iter() {
            let slot = match io
                .iter_mut()
                .position(|x| x.major == e.major && x.minor == e.minor)
            {
                Some(i) => &mut io[i],
                None => {
                    io.push(v2::IOEntry {
                        major: e.major,
                        minor: e.minor,
                        ..Default::default()
                    });
                    io.last_mut().expect("just pushed")
                }
            };
            match (read_op, e.op_type.as_deref()) {
                (true, Some("read" | "Read")) => slot.rbytes = e.value,
                (true, Some("write" | "Write")) => slot.wbytes = e.value,
                (false, Some("read" | "Read")) => slot.rios = e.value,
                (false, Some("write" | "Write")) => slot.wios = e.value,
                _ => {}
            }
        }
    }
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: stats.pids.current,
            limit: stats.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: cpu.usage.usage_total / 1000,
            user_usec: cpu.usage.usage_user / 1000,
            system_usec: cpu.usage.usage_kernel / 1000,
            nr_periods: cpu.throttling.periods,
            nr_throttled: cpu.throttling.throttled_periods,
            throttled_usec: cpu.throttling.throttled_time / 1000,
            ..Default::default()
        }),
        memory: MessageField::some(v2::MemoryStat {
            anon: s("anon"),
            file: s("file"),
            kernel_stack: s("kernel_stack"),
            slab: s("slab"),
            sock: s("sock"),
            shmem: s("shmem"),
            file_mapped: s("file_mapped"),
            file_dirty: s("file_dirty"),
            file_writeback: s("file_writeback"),
            anon_thp: s("anon_thp"),
            inactive_anon: s("inactive_anon"),
            active_anon: s("active_anon"),
            inactive_file: s("inactive_file"),
            active_file: s("active_file"),
            unevictable: s("unevictable"),
            slab_reclaimable: s("slab_reclaimable"),
            slab_unreclaimable: s("slab_unreclaimable"),
            pgfault: s("pgfault"),
            pgmajfault: s("pgmajfault"),
            usage: stats.memory.memory.usage,
            usage_limit: stats.memory.memory.limit,
            max_usage: stats.memory.memory.max_usage,
            swap_usage: stats.memory.memswap.usage,
            swap_limit: stats.memory.memswap.limit,
            ..Default::default()
        }),
        io: MessageField::some(v2::IOStat {
            usage: io,
            ..Default::default()
        }),
        memory_events: MessageField::some(v2::MemoryEvents {
            oom_kill: oom_kills,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stats {
        let mut s = Stats::default();
        s.pids.current = 3;
        s.pids.limit = 10;
        s.cpu.usage.usage_total = 5_000_000;
        s.memory.memory.usage = 4096;
        s.memory.memory.limit = 1 << 20;
        s.memory.stats.insert("total_rss".into(), 2048);
        s.memory.stats.insert("anon".into(), 1024);
        s.blkio.service_bytes.push(BlkioDeviceStat {
            major: 8,
            minor: 0,
            op_type: Some("Read".into()),
            value: 512,
        });
        s
    }

    #[test]
    fn v1_carries_usage_limits_and_ooms() {
        let m = v1_metrics(&sample(), 2);
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.pids.limit, 10);
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 1 << 20);
        assert_eq!(m.memory.total_rss, 2048);
        assert_eq!(m.memory_oom_control.oom_kill, 2);
        assert_eq!(m.blkio.io_service_bytes_recursive[0].value, 512);
    }

    #[test]
    fn v2_converts_cpu_to_microseconds_and_merges_io() {
        let m = v2_metrics(&sample(), 1);
        assert_eq!(m.cpu.usage_usec, 5_000);
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.memory.usage_limit, 1 << 20);
        assert_eq!(m.memory.anon, 1024);
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.io.usage.len(), 1);
        assert_eq!(m.io.usage[0].rbytes, 512);
    }
}
