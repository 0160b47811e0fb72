//! The Debian package (`scripts/package`): its files, control data and maintainer scripts, its
//! systemd units checked by `systemd-analyze verify`, and an install, upgrade and purge by
//! dpkg into a scratch root that keep the storage until the purge.
//!
//! The package is built around a stand-in binary (a copy of `/bin/true`): what is checked here
//! is the packaging, and the debug build of `callhook` would make each package 200 MB.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Builds the package of `version` into `dir`; its path.
fn package(dir: &Path, version: &str) -> PathBuf {
    let binary = dir.join("callhook");
    std::fs::copy("/bin/true", &binary).unwrap();
    let output = run(Command::new(workspace().join("scripts/package")).args([
        "--binary",
        binary.to_str().unwrap(),
        "--out",
        dir.join(version).to_str().unwrap(),
        "--version",
        version,
        "--compression",
        "none",
    ]));
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn dpkg_deb(args: &[&str], package: &Path) -> String {
    let output = run(Command::new("dpkg-deb").args(args).arg(package));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_package_holds_the_binary_units_conffile_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let deb = package(dir.path(), "1.2.3");
    let contents = dpkg_deb(&["--contents"], &deb);
    let files: Vec<(String, String)> = contents
        .lines()
        .filter(|line| line.starts_with('-'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[5].to_owned(), format!("{} {}", fields[0], fields[1]))
        })
        .collect();
    let expected = [
        ("./etc/callhook/callhook.toml", "-rw-r--r-- root/root"),
        (
            "./lib/systemd/system/callhook.service",
            "-rw-r--r-- root/root",
        ),
        (
            "./lib/systemd/system/callhook@.service",
            "-rw-r--r-- root/root",
        ),
        ("./usr/bin/callhook", "-rwxr-xr-x root/root"),
        ("./usr/lib/sysusers.d/callhook.conf", "-rw-r--r-- root/root"),
        ("./usr/share/doc/callhook/README.md", "-rw-r--r-- root/root"),
        (
            "./usr/share/doc/callhook/configuration.md",
            "-rw-r--r-- root/root",
        ),
        ("./usr/share/doc/callhook/copyright", "-rw-r--r-- root/root"),
        (
            "./usr/share/doc/callhook/examples/callhook.toml",
            "-rw-r--r-- root/root",
        ),
        (
            "./usr/share/doc/callhook/examples/webhooks.ini",
            "-rw-r--r-- root/root",
        ),
        (
            "./usr/share/doc/callhook/install.md",
            "-rw-r--r-- root/root",
        ),
        (
            "./usr/share/doc/callhook/licences.md",
            "-rw-r--r-- root/root",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(path, mode)| (path.to_string(), mode.to_string()))
        .collect();
    assert_eq!(files, expected);
    let fields = dpkg_deb(&["--field"], &deb);
    for field in [
        "Package: callhook",
        "Version: 1.2.3",
        "Depends: libc6 (>= 2.36), systemd",
    ] {
        assert!(fields.contains(field), "{field} not in\n{fields}");
    }
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/callhook/callhook.toml\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        run(Command::new("sh").arg("-n").arg(&path));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o755, "{script}");
    }
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    // `verify` checks that ExecStart is executable: point it at a real file.
    let binary = dir.path().join("callhook");
    std::fs::copy("/bin/true", &binary).unwrap();
    let units = workspace().join("packaging/systemd");
    for unit in ["callhook.service", "callhook@.service"] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        assert!(text.contains("ExecStart=/usr/bin/callhook run --config /etc/callhook/"));
        for hardening in [
            "User=callhook",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "Restart=on-failure",
            "ExecReload=/bin/kill -HUP $MAINPID",
        ] {
            assert!(text.contains(hardening), "{unit} lacks {hardening}");
        }
        let text = text.replace("/usr/bin/callhook", binary.to_str().unwrap());
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    for unit in ["callhook.service", "callhook@acme.service"] {
        let output = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("./{unit}"))
            .current_dir(dir.path())
            .output()
            .expect("systemd-analyze (package systemd) is installed by scripts/setup");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stderr.is_empty(),
            "{unit}:\n{stderr}"
        );
    }
    let template = std::fs::read_to_string(dir.path().join("callhook@.service")).unwrap();
    assert!(template.contains("StateDirectory=callhook/%i"));
    assert!(template.contains("--config /etc/callhook/%i.toml"));
}

/// dpkg with an installation root of its own, maintainer scripts run outside a chroot (with
/// `DPKG_ROOT` set, which they honour); dependencies are not in the scratch root.
fn dpkg(root: &Path) -> Command {
    let mut command = Command::new("dpkg");
    command.arg(format!("--root={}", root.display())).args([
        "--force-not-root",
        "--force-script-chrootless",
        "--force-depends",
        "--log=/dev/null",
    ]);
    command
}

#[test]
fn an_upgrade_keeps_the_storage_and_the_edited_configuration_and_a_purge_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();

    run(dpkg(&root).arg("-i").arg(package(dir.path(), "1.0.0")));
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|line| line.starts_with("callhook:") && line.contains(":/var/lib/callhook:")),
        "the system user: {passwd}"
    );
    // What a running host would have left: a queue, and an edited configuration.
    let storage = root.join("var/lib/callhook");
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::write(storage.join("callhook.redb"), "queued deliveries").unwrap();
    let config = root.join("etc/callhook/callhook.toml");
    let edited = std::fs::read_to_string(&config).unwrap() + "\n# edited by the operator\n";
    std::fs::write(&config, &edited).unwrap();

    run(dpkg(&root).arg("-i").arg(package(dir.path(), "1.1.0")));
    assert_eq!(
        std::fs::read_to_string(storage.join("callhook.redb")).unwrap(),
        "queued deliveries"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);

    run(dpkg(&root).args(["--remove", "callhook"]));
    assert!(
        storage.join("callhook.redb").exists(),
        "remove keeps the storage"
    );
    assert!(config.exists(), "remove keeps the configuration");
    assert!(!root.join("usr/bin/callhook").exists());

    run(dpkg(&root).args(["--purge", "callhook"]));
    assert!(!storage.exists(), "purge removes the storage");
    assert!(!config.exists(), "purge removes the configuration");
}
