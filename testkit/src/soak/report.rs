//! The soak's report: the seed and settings, the fault timeline, faults per kind, the result table
//! and every violation with its evidence, as Markdown (printed, and written to the soak's
//! directory).
//!
//! Must not decide anything: it formats what the checker found.

use std::fmt::Write as _;

use super::SoakConfig;
use super::checker::Findings;
use super::timeline::Timeline;
use crate::net::Traffic;

/// What else the report shows besides the findings.
pub struct ReportInputs<'a> {
    pub cfg: &'a SoakConfig,
    pub timeline: &'a Timeline,
    pub planned: usize,
    pub injected: usize,
    pub uplink: Traffic,
    pub healed: &'a [String],
}

/// The whole report.
pub fn render(r: &ReportInputs, f: &Findings) -> String {
    let mut out = String::new();
    let cfg = r.cfg;
    let without: Vec<&str> = cfg.without.iter().map(|k| k.name()).collect();
    let _ = writeln!(
        out,
        "## Fault soak: seed {}, {} min, {} readings/s{}\n\nreplay: `scripts/soak --seed {} \
         --minutes {}{}`; directory {}\n",
        cfg.seed,
        cfg.minutes,
        cfg.rate,
        if without.is_empty() {
            String::new()
        } else {
            format!(", without {}", without.join(","))
        },
        cfg.seed,
        cfg.minutes,
        without
            .iter()
            .map(|k| format!(" --without {k}"))
            .collect::<String>(),
        cfg.dir.display()
    );
    timeline(&mut out, r);
    per_kind(&mut out, r);
    result(&mut out, r, f);
    violations(&mut out, f);
    out
}

fn timeline(out: &mut String, r: &ReportInputs) {
    let tl = r.timeline;
    let _ = writeln!(
        out,
        "### Timeline ({} of {} planned faults injected)\n\n\
         | # | fault | target | planned at s | hold s | start s | end s | notes |\n\
         | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |",
        r.injected, r.planned
    );
    for e in tl.entries() {
        let p = &e.planned;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {} | {:.1} | {:.1} | {} |",
            p.id,
            p.kind.name(),
            e.target,
            p.at.as_secs_f64(),
            p.hold.as_secs(),
            tl.secs(e.start_ms),
            tl.secs(e.end_ms),
            e.notes.join("; ")
        );
    }
    let events = tl.events();
    if !events.is_empty() || !r.healed.is_empty() {
        let _ = writeln!(out, "\nOther events:\n");
        for e in events {
            let flag = if e.violation { " **(violation)**" } else { "" };
            let what = e.what.replace('\n', " / ");
            let _ = writeln!(out, "- +{:.1} s{flag}: {what}", tl.secs(e.at_ms));
        }
        for h in r.healed {
            let _ = writeln!(out, "- final heal: {h}");
        }
    }
    out.push('\n');
}

fn per_kind(out: &mut String, r: &ReportInputs) {
    let _ = writeln!(
        out,
        "### Faults per kind\n\n| fault | injected |\n| --- | ---: |"
    );
    for (k, n) in r.timeline.per_kind() {
        let off = if r.cfg.without.contains(&k) {
            " (--without)"
        } else {
            ""
        };
        let _ = writeln!(out, "| {}{off} | {n} |", k.name());
    }
    out.push('\n');
}

fn result(out: &mut String, r: &ReportInputs, f: &Findings) {
    let rejoins: Vec<String> = (f.rejoins.iter().zip(&f.heartbeat_timeouts))
        .map(|(r, h)| format!("{r} ({h} timeouts)"))
        .collect();
    let _ = writeln!(
        out,
        "### Result\n\n\
         | seed | minutes | faults | fed (accepted) | stored | resent after restart | duplicates (one producer; mixed epoch) | lost | out of order | dead-lettered | left in spool | consumed lines / distinct / missing | rejoins per member (bound) | uplink bytes up / down | violations |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | ---: |\n\
         | {} | {} | {} | {} | {} | {} ({} restarts announced {}) | {} ({}) | {} | {} | {} | {} | {} / {} / {} | {} ({}) | {} / {} | {} |\n",
        r.cfg.seed,
        r.cfg.minutes,
        r.injected,
        f.accepted,
        f.stored,
        f.restart_resends,
        f.restarts,
        f.possible_duplicates,
        f.producer_duplicates,
        f.mixed_epoch,
        f.lost,
        f.out_of_order,
        f.dead_lettered,
        f.left_in_spool,
        f.consumed_lines,
        f.consumed_distinct,
        f.not_consumed,
        rejoins.join(", "),
        f.rejoin_bound,
        r.uplink.up,
        r.uplink.down,
        f.violations.iter().map(|v| v.count).sum::<u64>()
    );
}

fn violations(out: &mut String, f: &Findings) {
    if f.violations.is_empty() {
        let _ = writeln!(out, "### Violations: none");
        return;
    }
    let _ = writeln!(out, "### Violations\n");
    for v in &f.violations {
        let _ = writeln!(out, "- **{}** ({}):", v.rule, v.count);
        for e in &v.evidence {
            let _ = writeln!(out, "  - {}", e.replace('\n', " / "));
        }
    }
}
