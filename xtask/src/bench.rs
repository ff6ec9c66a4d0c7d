//! `cargo xtask bench`: criterion benches, with baselines and a regression gate.
//!
//! Criterion stores each run of a bench under
//! `target/criterion/<bench id>/<baseline>/estimates.json`; comparing two baselines is
//! comparing the mean point estimates (nanoseconds) of those files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cmd, pstn_load};

/// The baseline name the candidate run is saved under when comparing.
const CANDIDATE: &str = "xtask-candidate";

/// Default regression threshold, in percent.
const DEFAULT_THRESHOLD: f64 = 10.0;

/// Arguments of `cargo xtask bench`.
#[derive(Debug, PartialEq)]
pub(crate) struct BenchArgs {
    save_baseline: Option<String>,
    baseline: Option<String>,
    threshold: f64,
    smoke: bool,
    filter: Option<String>,
}

/// One bench in the comparison table; a side is `None` when that run lacks the bench.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: String,
    baseline_ns: Option<f64>,
    new_ns: Option<f64>,
}

impl BenchArgs {
    /// Every bench once, in criterion's test mode: what CI runs.
    pub(crate) fn smoke() -> Self {
        Self {
            save_baseline: None,
            baseline: None,
            threshold: DEFAULT_THRESHOLD,
            smoke: true,
            filter: None,
        }
    }

    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Self {
            save_baseline: None,
            baseline: None,
            threshold: DEFAULT_THRESHOLD,
            smoke: false,
            filter: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| {
                args.next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value"))
            };
            match arg.as_str() {
                "--save-baseline" => parsed.save_baseline = Some(baseline_name(value(arg)?)?),
                "--baseline" => parsed.baseline = Some(baseline_name(value(arg)?)?),
                "--threshold" => {
                    let text = value(arg)?;
                    parsed.threshold = text
                        .trim_end_matches('%')
                        .parse()
                        .ok()
                        .filter(|pct: &f64| pct.is_finite() && *pct >= 0.0)
                        .with_context(|| format!("--threshold `{text}` is not a percentage"))?;
                }
                "--smoke" => parsed.smoke = true,
                flag if flag.starts_with('-') => bail!("unknown bench option `{flag}`"),
                filter if parsed.filter.is_none() => parsed.filter = Some(filter.to_owned()),
                extra => bail!("bench takes one filter, got a second: `{extra}`"),
            }
        }
        let modes = [
            parsed.save_baseline.is_some(),
            parsed.baseline.is_some(),
            parsed.smoke,
        ];
        if modes.iter().filter(|on| **on).count() > 1 {
            bail!("use only one of --save-baseline, --baseline and --smoke");
        }
        Ok(parsed)
    }
}

impl Row {
    /// How much slower the new run is, in percent (negative: faster).
    fn change_pct(&self) -> Option<f64> {
        match (self.baseline_ns, self.new_ns) {
            (Some(base), Some(new)) if base > 0.0 => Some((new - base) / base * 100.0),
            _ => None,
        }
    }
}

/// The filter that runs only the PSTN load bench ([`pstn_load`], not criterion).
const PSTN_LOAD: &str = "pstn_load";

/// Runs the benches as the arguments say.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    if args.filter.as_deref() == Some(PSTN_LOAD) {
        return if args.smoke {
            pstn_load::smoke()
        } else {
            pstn_load::full()
        };
    }
    // Only `[[bench]]` targets, by name: `--benches` would also run the libtest harness
    // of every library, which rejects criterion's flags.
    let targets = bench_targets()?;
    if targets.is_empty() {
        println!("bench: the workspace has no benches yet");
        return Ok(());
    }
    let mut cargo_args = vec!["bench", "--workspace"];
    for target in &targets {
        cargo_args.extend(["--bench", target]);
    }
    cargo_args.push("--");
    if let Some(filter) = &args.filter {
        cargo_args.push(filter);
    }
    if args.smoke {
        cargo_args.push("--test");
        cmd::run(&mut cmd::cargo(&cargo_args))?;
        // Its smoke run only with every bench (the smoke has no other filter).
        return match args.filter {
            None => pstn_load::smoke(),
            Some(_) => Ok(()),
        };
    }
    if let Some(name) = &args.save_baseline {
        cargo_args.extend(["--save-baseline", name]);
        cmd::run(&mut cmd::cargo(&cargo_args))?;
        println!("bench: saved baseline `{name}`");
        return Ok(());
    }
    let Some(baseline) = &args.baseline else {
        cmd::run(&mut cmd::cargo(&cargo_args))?;
        // The load bench has no criterion baseline; it runs with every bench.
        return match args.filter {
            None => pstn_load::full(),
            Some(_) => Ok(()),
        };
    };

    let criterion = cmd::target_dir().join("criterion");
    let saved = read_estimates(&criterion, baseline)?;
    if saved.is_empty() {
        bail!(
            "no baseline `{baseline}` under {}; save one with `cargo xtask bench --save-baseline {baseline}`",
            criterion.display()
        );
    }
    // A candidate left by an earlier run would pass for a bench this run skipped.
    remove_baseline(&criterion, CANDIDATE)?;
    cargo_args.extend(["--save-baseline", CANDIDATE]);
    cmd::run(&mut cmd::cargo(&cargo_args))?;
    let new = read_estimates(&criterion, CANDIDATE)?;

    let rows = compare(&saved, &new);
    print!("{}", render(&rows, baseline));
    let slower = regressions(&rows, args.threshold);
    if !slower.is_empty() {
        bail!(
            "{} bench(es) more than {}% slower than baseline `{baseline}`: {}",
            slower.len(),
            args.threshold,
            slower.join(", ")
        );
    }
    println!(
        "bench: no bench more than {}% slower than `{baseline}`",
        args.threshold
    );
    Ok(())
}

/// Names of the workspace's `[[bench]]` targets.
fn bench_targets() -> Result<Vec<String>> {
    let metadata = cmd::output(&mut cmd::cargo([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    let metadata: Value =
        serde_json::from_str(&metadata).context("`cargo metadata` printed invalid JSON")?;
    Ok(bench_targets_in(&metadata))
}

/// Names of the bench targets of the packages in `cargo metadata --no-deps` output,
/// sorted and without duplicates.
fn bench_targets_in(metadata: &Value) -> Vec<String> {
    let mut names: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|pkg| pkg["targets"].as_array().into_iter().flatten())
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Mean estimates (ns) of every bench that has a `<name>/estimates.json` under `dir`,
/// keyed by bench id (the path from `dir` to the baseline directory).
fn read_estimates(dir: &Path, name: &str) -> Result<BTreeMap<String, f64>> {
    let mut estimates = BTreeMap::new();
    if dir.is_dir() {
        collect_estimates(dir, dir, name, &mut estimates)?;
    }
    Ok(estimates)
}

fn collect_estimates(
    root: &Path,
    dir: &Path,
    name: &str,
    estimates: &mut BTreeMap<String, f64>,
) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let file = path.join("estimates.json");
        if path.file_name().is_some_and(|n| n == name) && file.is_file() {
            let id = dir
                .strip_prefix(root)
                .expect("walk stays under the criterion dir")
                .to_string_lossy()
                .into_owned();
            let text =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let json: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let mean = json["mean"]["point_estimate"]
                .as_f64()
                .with_context(|| format!("{} has no mean.point_estimate", file.display()))?;
            estimates.insert(id, mean);
        } else {
            collect_estimates(root, &path, name, estimates)?;
        }
    }
    Ok(())
}

/// Deletes every `<name>/` baseline directory under `dir`.
fn remove_baseline(dir: &Path, name: &str) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == name) {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
        } else {
            remove_baseline(&path, name)?;
        }
    }
    Ok(())
}

/// One row per bench id present in either run, sorted by id.
fn compare(baseline: &BTreeMap<String, f64>, new: &BTreeMap<String, f64>) -> Vec<Row> {
    let mut ids: Vec<&String> = baseline.keys().chain(new.keys()).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .map(|id| Row {
            id: id.clone(),
            baseline_ns: baseline.get(id).copied(),
            new_ns: new.get(id).copied(),
        })
        .collect()
}

/// Ids of the benches slower than the baseline by more than `threshold` percent.
fn regressions(rows: &[Row], threshold: f64) -> Vec<String> {
    rows.iter()
        .filter(|row| row.change_pct().is_some_and(|pct| pct > threshold))
        .map(|row| row.id.clone())
        .collect()
}

fn render(rows: &[Row], baseline: &str) -> String {
    let id_width = rows
        .iter()
        .map(|row| row.id.len())
        .chain(["bench".len()])
        .max()
        .unwrap_or_default();
    let base_title = format!("baseline ({baseline})");
    let base_width = base_title.len().max(12);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<id_width$}  {base_title:>base_width$}  {:>12}  {:>9}",
        "bench", "new", "change"
    );
    for row in rows {
        let change = match row.change_pct() {
            Some(pct) => format!("{pct:+.1}%"),
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<id_width$}  {:>base_width$}  {:>12}  {change:>9}",
            row.id,
            duration(row.baseline_ns),
            duration(row.new_ns),
        );
    }
    out
}

/// A duration in nanoseconds, in the unit that reads best.
fn duration(ns: Option<f64>) -> String {
    let Some(ns) = ns else {
        return "missing".to_owned();
    };
    if ns < 1e3 {
        format!("{ns:.2} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Baseline names become directory names; keep them to one plain path component.
fn baseline_name(name: String) -> Result<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if !ok {
        bail!("baseline name `{name}` must be letters, digits, `-`, `_` or `.`");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<BenchArgs> {
        BenchArgs::parse(&list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    /// A fresh scratch directory under the system temp dir, removed first if left over.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_estimate(criterion: &Path, id: &str, baseline: &str, mean_ns: f64) {
        let dir = criterion.join(id).join(baseline);
        fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!({
            "mean": {"confidence_interval": {"confidence_level": 0.95, "lower_bound": mean_ns, "upper_bound": mean_ns}, "point_estimate": mean_ns, "standard_error": 1.0},
            "median": {"point_estimate": mean_ns * 2.0},
        });
        fs::write(dir.join("estimates.json"), json.to_string()).unwrap();
        fs::write(dir.join("benchmark.json"), "{}").unwrap();
    }

    #[test]
    fn parses_bench_arguments() {
        let parsed = args(&["--baseline", "main", "--threshold", "5%", "jitter"]).unwrap();
        assert_eq!(parsed.baseline.as_deref(), Some("main"));
        assert_eq!(parsed.threshold, 5.0);
        assert_eq!(parsed.filter.as_deref(), Some("jitter"));
        assert_eq!(args(&[]).unwrap().threshold, 10.0);
        assert!(args(&["--smoke"]).unwrap().smoke);
        assert!(args(&["--baseline"]).is_err());
        assert!(args(&["--threshold", "-3"]).is_err());
        assert!(args(&["--baseline", "a", "--save-baseline", "b"]).is_err());
        assert!(args(&["--smoke", "--baseline", "a"]).is_err());
        assert!(args(&["--save-baseline", "../x"]).is_err());
        assert!(args(&["a", "b"]).is_err());
    }

    #[test]
    fn reads_estimates_of_one_baseline() {
        let criterion = scratch("read");
        write_estimate(&criterion, "jitter/insert/64", "main", 1500.0);
        write_estimate(&criterion, "jitter/insert/64", "new", 9.0);
        write_estimate(&criterion, "mixer", "main", 2.5e6);
        fs::create_dir_all(criterion.join("mixer/change")).unwrap();
        fs::create_dir_all(criterion.join("report")).unwrap();

        let main = read_estimates(&criterion, "main").unwrap();
        assert_eq!(
            main.into_iter().collect::<Vec<_>>(),
            [
                ("jitter/insert/64".to_owned(), 1500.0),
                ("mixer".to_owned(), 2.5e6)
            ]
        );
        assert!(read_estimates(&criterion, "other").unwrap().is_empty());
        assert!(
            read_estimates(&criterion.join("absent"), "main")
                .unwrap()
                .is_empty()
        );

        remove_baseline(&criterion, "main").unwrap();
        assert!(read_estimates(&criterion, "main").unwrap().is_empty());
        assert_eq!(read_estimates(&criterion, "new").unwrap().len(), 1);
        fs::remove_dir_all(&criterion).unwrap();
    }

    #[test]
    fn rejects_estimates_without_a_mean() {
        let criterion = scratch("bad");
        fs::create_dir_all(criterion.join("b/main")).unwrap();
        fs::write(criterion.join("b/main/estimates.json"), r#"{"median": {}}"#).unwrap();
        assert!(read_estimates(&criterion, "main").is_err());
        fs::remove_dir_all(&criterion).unwrap();
    }

    #[test]
    fn compares_against_the_threshold() {
        let criterion = scratch("compare");
        write_estimate(&criterion, "faster", "main", 100.0);
        write_estimate(&criterion, "faster", CANDIDATE, 80.0);
        write_estimate(&criterion, "within", "main", 100.0);
        write_estimate(&criterion, "within", CANDIDATE, 110.0);
        write_estimate(&criterion, "slower", "main", 100.0);
        write_estimate(&criterion, "slower", CANDIDATE, 125.0);
        write_estimate(&criterion, "gone", "main", 100.0);
        write_estimate(&criterion, "added", CANDIDATE, 100.0);

        let rows = compare(
            &read_estimates(&criterion, "main").unwrap(),
            &read_estimates(&criterion, CANDIDATE).unwrap(),
        );
        let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        assert_eq!(ids, ["added", "faster", "gone", "slower", "within"]);
        let changes: Vec<Option<f64>> = rows.iter().map(Row::change_pct).collect();
        assert_eq!(changes, [None, Some(-20.0), None, Some(25.0), Some(10.0)]);

        // Exactly at the threshold passes; above it fails; missing benches never fail.
        assert_eq!(regressions(&rows, 10.0), ["slower"]);
        assert_eq!(regressions(&rows, 9.9), ["slower", "within"]);
        assert!(regressions(&rows, 30.0).is_empty());

        let table = render(&rows, "main");
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].starts_with("bench "));
        assert!(lines[0].contains("baseline (main)"));
        assert!(lines[1].contains("missing"));
        assert!(lines[4].starts_with("slower"));
        assert!(lines[4].contains("100.00 ns"));
        assert!(lines[4].ends_with("+25.0%"));
        assert!(lines[2].ends_with("-20.0%"));
        fs::remove_dir_all(&criterion).unwrap();
    }

    #[test]
    fn finds_bench_targets() {
        let metadata = serde_json::json!({"packages": [
            {"name": "ringwire-signaling", "targets": [
                {"name": "ringwire_signaling", "kind": ["lib"]},
                {"name": "signaling", "kind": ["bench"]},
                {"name": "ring-timeout", "kind": ["test"]},
            ]},
            {"name": "ringwire-media", "targets": [
                {"name": "jitter", "kind": ["bench"]},
            ]},
            {"name": "xtask", "targets": [{"name": "xtask", "kind": ["bin"]}]},
        ]});
        assert_eq!(bench_targets_in(&metadata), ["jitter", "signaling"]);
        assert!(bench_targets_in(&serde_json::json!({"packages": []})).is_empty());
    }

    #[test]
    fn formats_durations() {
        assert_eq!(duration(Some(12.345)), "12.35 ns");
        assert_eq!(duration(Some(1500.0)), "1.50 µs");
        assert_eq!(duration(Some(2.5e6)), "2.50 ms");
        assert_eq!(duration(Some(3e9)), "3.00 s");
        assert_eq!(duration(None), "missing");
    }
}
