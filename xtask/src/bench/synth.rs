//! How long synth takes, in process, without the disk writes.

use crate::{EnvFlags, synth};
use anyhow::Result;
use std::time::{Duration, Instant};

pub fn run(iterations: u32) -> Result<()> {
    let flags = EnvFlags { env: "dev".into(), overrides: vec![] };
    let iterations = iterations.max(1);
    let mut times = Vec::with_capacity(iterations as usize);
    let mut bytes = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        // What `synth` does before writing files: read and check the config, build,
        // validate, render the JSON.
        let config = synth::load_config(&flags)?;
        let synthesized = stack::app::build(&config)?;
        bytes = synthesized.template_json().len();
        times.push(start.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("synth of env dev ({bytes} bytes of template JSON), {iterations} iterations:");
    println!(
        "  min {:.2} ms   median {:.2} ms   p95 {:.2} ms   max {:.2} ms",
        ms(times[0]),
        ms(pct(0.5)),
        ms(pct(0.95)),
        ms(*times.last().expect("at least one"))
    );
    Ok(())
}
