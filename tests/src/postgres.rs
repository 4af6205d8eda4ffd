//! A real PostgreSQL server of a test's own: Debian's postgresql-15, initdb in a temporary
//! folder, run as `nobody` on a port of its own, killed on drop. dhcp6d in a network namespace
//! reaches it through its Unix socket (the folder is shared across namespaces; loopback is not).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::peers::{wait_for, Scratch};

/// Debian's PostgreSQL 15 programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The database the tests' dhcp6d use, and its (superuser) role.
pub const DATABASE: &str = "leases";
pub const USER: &str = "dhcp6d";

/// A PostgreSQL server running as `nobody`.
pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

/// Runs `program args` as `nobody`, to completion; panics with its output if it fails.
fn as_nobody(program: &str, args: &[&str]) {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(Path::new(BIN).join(program))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (is postgresql-15 installed? cargo xtask setup)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    loop {
        let port = 20000 + rand::random::<u16>() % 30000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Postgres {
    /// initdb in `scratch`, then starts the server and creates [`DATABASE`].
    pub fn start(scratch: &Scratch) -> Postgres {
        let dir = scratch.path("postgres");
        fs::create_dir_all(dir.join("socket")).unwrap();
        // nobody reaches its folder through the scratch folder.
        fs::set_permissions(&scratch.dir, fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown").args(["-R", "nobody:nogroup"]).arg(&dir).status().unwrap();
        assert!(chown.success());
        let data = dir.join("data");
        let data_text = data.display().to_string();
        as_nobody("initdb", &["-D", &data_text, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]);
        let mut pg = Postgres { dir, port: free_port(), child: None };
        pg.run();
        let out = Command::new(Path::new(BIN).join("psql"))
            .args(["-h", &pg.socket_dir(), "-p", &pg.port.to_string(), "-U", USER, "-d", "postgres", "-c"])
            .arg(format!("CREATE DATABASE {DATABASE}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "creating the database: {}", String::from_utf8_lossy(&out.stderr));
        pg
    }

    /// The folder of its Unix socket: dhcp6d's `host`.
    pub fn socket_dir(&self) -> String {
        self.dir.join("socket").display().to_string()
    }

    /// The server's log.
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// Starts the server (again, on the same folder and port), and waits until it takes
    /// connections.
    pub fn run(&mut self) {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("postgres.log")).unwrap();
        let _ = Command::new("chown").arg("nobody:nogroup").arg(self.dir.join("postgres.log")).status();
        let child = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(Path::new(BIN).join("postgres"))
            .args(["-D", &self.dir.join("data").display().to_string(), "-p", &self.port.to_string()])
            .args(["-k", &self.socket_dir(), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=60"])
            .args(["-c", "shared_buffers=64MB", "-c", "unix_socket_permissions=0777"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        // `postgres` is there from initdb on; DATABASE only once made.
        wait_for("PostgreSQL to take connections", Duration::from_secs(60), || self.connect("postgres").map(|_| ()));
    }

    /// Kills the server and every backend with SIGKILL, as a crash would: the postmaster and
    /// its children (each of which PostgreSQL puts in a process group of its own).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let postmaster = child.id() as i32;
            for pid in children(postmaster).into_iter().chain([postmaster]) {
                // SAFETY: kill has no memory preconditions; these are the server's processes.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = child.wait();
        }
    }

    /// A client on `database`, if the server takes connections.
    fn connect(&self, database: &str) -> Option<postgres::Client> {
        postgres::Config::new()
            .host_path(self.socket_dir())
            .port(self.port)
            .user(USER)
            .dbname(database)
            .connect_timeout(Duration::from_secs(2))
            .connect(postgres::NoTls)
            .ok()
    }

    /// A client on [`DATABASE`], if the server takes connections.
    pub fn try_client(&self) -> Option<postgres::Client> {
        self.connect(DATABASE)
    }

    /// A client on [`DATABASE`].
    pub fn client(&self) -> postgres::Client {
        wait_for("a connection to PostgreSQL", Duration::from_secs(30), || self.try_client())
    }

    /// The `[lease_database]` table of a dhcp6d configuration using this server.
    pub fn lease_database(&self) -> String {
        format!(
            "\n[lease_database]\ntype = \"postgresql\"\nhost = {:?}\nport = {}\ndatabase = \"{DATABASE}\"\nuser = \"{USER}\"\n",
            self.socket_dir(),
            self.port
        )
    }
}

/// The processes whose parent is `parent`.
fn children(parent: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // After the parenthesised name: state, then the parent's pid.
            let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}
