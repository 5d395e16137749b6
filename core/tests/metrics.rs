//! The `metrics` feature: the pool's and an object's counters, the frame states and the latency
//! histograms reach a `metrics` recorder (here metrics-util's debugging recorder, installed for
//! this thread) with the values `Pages::stats` and `PageMapper::stats` report.
#![cfg(feature = "metrics")]

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use pagecore::{MemoryAccessor, Pages};
use std::collections::HashMap;

type Seen = HashMap<(MetricKind, String, Vec<(String, String)>), DebugValue>;

fn seen(recorder: &DebuggingRecorder) -> Seen {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(ck, _, _, v)| {
            let (kind, key) = ck.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            ((kind, key.name().to_string(), labels), v)
        })
        .collect()
}

fn counter(s: &Seen, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match s.get(&(MetricKind::Counter, name.to_string(), labels))? {
        DebugValue::Counter(v) => Some(*v),
        _ => None,
    }
}

#[test]
fn the_recorder_sees_what_stats_report() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let pages = Pages::builder()
            .page_size(64)
            .frames(2)
            .count_hits(true)
            .build()
            .unwrap();
        let obj = pages.open(MemoryAccessor::new(), 64 * 8).unwrap();
        obj.write(0).unwrap()[0] = 1;
        drop(obj.read(0).unwrap());
        drop(obj.read(1).unwrap());
        drop(obj.read(2).unwrap()); // evicts page 0, written back first
        pages.report_metrics();
        obj.report_metrics();
        let s = seen(&recorder);
        let ps = pages.stats();
        let os = obj.stats();
        let pool = label(&s, "pagecore_hits_total", "pool");
        let p = [("pool", pool.as_str())];
        assert_eq!(counter(&s, "pagecore_hits_total", &p), Some(ps.hits));
        assert_eq!(counter(&s, "pagecore_fills_total", &p), Some(ps.fills));
        assert_eq!(counter(&s, "pagecore_writebacks_total", &p), Some(1));
        let id = label(&s, "pagecore_object_hits_total", "object");
        let object = [("pool", pool.as_str()), ("object", id.as_str())];
        assert_eq!(
            counter(&s, "pagecore_object_misses_total", &object),
            Some(os.misses)
        );
        assert_eq!(
            counter(&s, "pagecore_object_evictions_total", &object),
            Some(1)
        );
        let resident = s.get(&(
            MetricKind::Gauge,
            "pagecore_frames".to_string(),
            vec![
                ("pool".to_string(), pool.clone()),
                ("state".to_string(), "resident".to_string()),
            ],
        ));
        assert!(
            matches!(resident, Some(DebugValue::Gauge(g)) if g.into_inner() == 2.0),
            "{resident:?}"
        );
        // Fills and write-backs were recorded as they happened.
        let pool_label = vec![("pool".to_string(), pool.clone())];
        let samples = |name: &str| match s.get(&(
            MetricKind::Histogram,
            name.to_string(),
            pool_label.clone(),
        )) {
            Some(DebugValue::Histogram(v)) => v.len() as u64,
            _ => 0,
        };
        assert_eq!(samples("pagecore_fill_seconds"), os.fill_latency.count());
        assert_eq!(samples("pagecore_writeback_seconds"), 1);
    });
}

/// The value of label `key` on series `name`.
fn label(s: &Seen, name: &str, key: &str) -> String {
    s.keys()
        .find(|(_, n, _)| n == name)
        .and_then(|(_, _, labels)| labels.iter().find(|(k, _)| k == key))
        .map(|(_, v)| v.clone())
        .expect("a labelled series")
}

/// Two pools report apart: their series differ in the `pool` label.
#[test]
fn two_pools_report_apart() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let a = Pages::builder().page_size(64).frames(2).build().unwrap();
        let b = Pages::builder().page_size(64).frames(5).build().unwrap();
        a.report_metrics();
        b.report_metrics();
        let s = seen(&recorder);
        let free: Vec<f64> = s
            .iter()
            .filter(|((k, n, l), _)| {
                *k == MetricKind::Gauge
                    && n == "pagecore_frames"
                    && l.iter().any(|(k, v)| k == "state" && v == "free")
            })
            .filter_map(|(_, v)| match v {
                DebugValue::Gauge(g) => Some(g.into_inner()),
                _ => None,
            })
            .collect();
        let mut free = free;
        free.sort_by(f64::total_cmp);
        assert_eq!(free, vec![2.0, 5.0]);
    });
}
