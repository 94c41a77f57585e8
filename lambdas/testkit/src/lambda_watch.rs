//! The functions' real binaries behind `cargo lambda watch`'s Lambda APIs: its Invoke API,
//! where moto's launcher forwards the Step Functions interpreter's invocations, and the
//! runtime API each function process polls, as on Lambda.
//!
//! Watch runs with `--only-lambda-apis`: the test starts the binaries cargo already built
//! for it (`CARGO_BIN_EXE_<name>`), so nothing compiles while tests run, and several
//! processes of one function serve concurrent invocations like warm containers.

use crate::{free_port, python_tools, wait_for_port};
use std::path::Path;
use std::process::{Child, Command, Stdio};

#[derive(Debug)]
pub struct LambdaWatch {
    pub port: u16,
    watch: Child,
    functions: Vec<Child>,
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        for child in self.functions.iter_mut().chain(std::iter::once(&mut self.watch)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl LambdaWatch {
    /// Starts `cargo lambda watch --only-lambda-apis` for this workspace on a free port of
    /// 127.0.0.1 (cargo-lambda from the Python tools); its output goes to `log_dir/watch.log`.
    pub fn start(log_dir: &Path) -> Result<Self, String> {
        let log =
            std::fs::File::create(log_dir.join("watch.log")).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let bin = python_tools()?;
        let port = free_port();
        let path = std::env::join_paths(
            std::iter::once(bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .map_err(|e| format!("PATH: {e}"))?;
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let watch = crate::cargo()
            .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .arg("--manifest-path")
            .arg(manifest)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting cargo lambda watch: {e}"))?;
        let mut watch = Self { port, watch, functions: Vec::new() };
        wait_for_port(port, &format!("cargo lambda watch (log: {})", log_dir.join("watch.log").display()))?;
        // Listening, but watch itself? A watch that could not bind its port has exited.
        std::thread::sleep(std::time::Duration::from_millis(200));
        if let Ok(Some(status)) = watch.watch.try_wait() {
            return Err(format!("cargo lambda watch exited ({status}) on port {port}, which another server holds"));
        }
        Ok(watch)
    }

    /// Where Lambda Invoke API requests go.
    pub fn invoke_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs `instances` processes of the function binary `exe` as function `name`, with
    /// `env` besides the variables Lambda sets; their logs go to `log_dir/<name>-<i>.log`.
    pub fn serve(
        &mut self,
        name: &str,
        exe: &Path,
        instances: usize,
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Result<(), String> {
        for i in 0..instances {
            let log = std::fs::File::create(log_dir.join(format!("{name}-{i}.log")))
                .map_err(|e| format!("{}: {e}", log_dir.display()))?;
            let child = Command::new(exe)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{}/.rt/{name}", self.port))
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
                .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
                .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("instance-{i}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("starting {}: {e}", exe.display()))?;
            self.functions.push(child);
        }
        Ok(())
    }
}
