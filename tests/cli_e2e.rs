//! End to end: the operator CLI — completions, `member` against a running daemon,
//! `import balances`, `backup` under load and `restore`.

mod common;

use common::*;

fn cli_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_loyaltyd"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `loyaltyd member …` against `d`, with the URL and token given on the command line.
async fn member(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let mut all: Vec<String> = vec!["member".into(), args[0].into()];
    all.extend([
        "--url".into(),
        d.base.clone(),
        "--token".into(),
        ADMIN_TOKEN.into(),
    ]);
    all.extend(args[1..].iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run_cli(&refs)
    })
    .await
    .unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (ok, out, err) = run_cli(&["completions", shell]);
        assert!(ok, "{shell}: {err}");
        for sub in ["member", "import", "backup", "restore", "verify", "serve"] {
            assert!(out.contains(sub), "{shell} completions lack {sub}");
        }
    }
    let (ok, out, _) = run_cli(&["member", "redeem", "--help"]);
    assert!(ok && out.contains("--idempotency-key") && out.contains("--reward"));
    let (ok, _, err) = run_cli(&["completions", "tcsh"]);
    assert!(!ok && err.contains("invalid value"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn member_commands_act_on_the_running_daemon() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let (s, _) = post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
    assert_eq!(s, 200);

    let (ok, out, err) = member(
        &d,
        &[
            "find",
            "--shop",
            "demo",
            "--email",
            "ADA@example.com",
            "--json",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let id = json(&out)["id"].as_str().unwrap().to_string();
    let (ok, out, _) = member(
        &d,
        &["find", "--shop", "demo", "--email", "ada@example.com"],
    )
    .await;
    assert!(
        ok && out.contains(&id) && out.contains("11 available"),
        "{out}"
    );

    // The token from the environment works too.
    let (ok, out, err) = cli_env(
        &["member", "show", "--url", &d.base, "--shop", "demo", &id],
        &[("LOYALTYD_TOKEN", ADMIN_TOKEN)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("lots (1)") && out.contains("expires"), "{out}");
    assert!(out.contains("earn") && out.contains("earn.base"), "{out}");

    let (ok, out, err) = member(
        &d,
        &[
            "adjust", "--shop", "demo", &id, "--points", "-2", "--reason", "typo",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("balance 9 available"), "{out}");
    assert!(err.contains("Idempotency-Key: cli-"), "{err}");

    // The same key twice posts once.
    let redeem = [
        "redeem",
        "--shop",
        "demo",
        &id,
        "--points",
        "3",
        "--order-id",
        "o-9",
        "--idempotency-key",
        "till-1-42",
    ];
    let (ok, first, err) = member(&d, &redeem).await;
    assert!(ok, "{err}");
    assert!(first.contains("balance 6 available"), "{first}");
    let (ok, second, err) = member(&d, &redeem).await;
    assert!(ok, "{err}");
    assert!(second.contains("nothing new was posted"), "{second}");
    assert!(second.contains("balance 6 available"), "{second}");
    let (ok, out, _) = member(&d, &["show", "--shop", "demo", &id, "--json"]).await;
    assert!(ok);
    let v = json(&out);
    assert_eq!(v["member"]["points"]["available"], 6);
    let kinds: Vec<&str> = v["ledger"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["redeem", "adjust", "earn"]);

    // API errors: clear message, non-zero exit.
    let (ok, _, err) = member(&d, &["redeem", "--shop", "demo", &id, "--points", "500"]).await;
    assert!(!ok && err.contains("422 insufficient_points"), "{err}");
    let (ok, _, err) = member(&d, &["show", "--shop", "demo", "m_00000000000000000000"]).await;
    assert!(!ok && err.contains("404 unknown_member"), "{err}");
    let (ok, _, err) = run_cli(&[
        "member",
        "show",
        "--url",
        &d.base,
        "--token",
        "wrong-token",
        "--shop",
        "demo",
        &id,
    ]);
    assert!(!ok && err.contains("401 unauthorized"), "{err}");
    let (ok, _, err) = run_cli(&[
        "member",
        "show",
        "--url",
        "http://127.0.0.1:9",
        "--token",
        "x",
        "--shop",
        "demo",
        &id,
    ]);
    assert!(!ok && err.contains("cannot reach loyaltyd"), "{err}");
}

fn verify(setup: &Setup) -> (bool, String) {
    let (ok, out, err) = run_cli(&["verify", "--config", setup.config_path().to_str().unwrap()]);
    (ok, format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn import_checks_the_whole_file_then_posts_once_per_row() {
    let setup = Setup::new(1024 * 1024);
    let config = setup.config_path().to_str().unwrap().to_string();
    {
        let d = setup.start();
        post_shopify(&d, "demo", "orders/paid", "wh-1", &order(1), SHOPIFY_SECRET).await;
        assert!(d.terminate().success());
    }
    let (ok, out) = verify(&setup);
    assert!(ok && out.contains("shop demo: ok (1 postings)"), "{out}");

    let csv = setup.dir.path().join("balances.csv");
    std::fs::write(
        &csv,
        "email,phone,first_name,last_name,points,external_id\n\
         ada@example.com,,Ada,Lovelace,100,old-1\n\
         bob@example.com,,Bob,,12.5,old-2\n\
         ,,Nobody,,5,old-3\n",
    )
    .unwrap();
    let csv_path = csv.to_str().unwrap();
    let args = [
        "import", "balances", "--config", &config, "--shop", "demo", "--csv", csv_path,
    ];
    let (ok, _, err) = run_cli(&args);
    assert!(!ok, "a bad file must fail");
    assert!(err.contains("line 3: points"), "{err}");
    assert!(err.contains("line 4: email: missing identity"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    let (ok, out) = verify(&setup);
    assert!(ok && out.contains("(1 postings)"), "nothing changed: {out}");

    std::fs::write(
        &csv,
        "email,phone,first_name,last_name,points,external_id\n\
         ada@example.com,,Ada,Lovelace,100,old-1\n\
         bob@example.com,+1 514 555 0177,Bob,,50,old-2\n\
         ,(514) 555-0199,Carol,,0,old-3\n",
    )
    .unwrap();
    let (ok, out, err) = run_cli(&args);
    assert!(ok, "{err}");
    assert!(
        out.contains("3 row(s): 2 member(s) created, 2 opening balance(s) posted (150 points), 0 already imported"),
        "{out}"
    );
    let (ok, out) = verify(&setup);
    assert!(ok && out.contains("shop demo: ok (3 postings)"), "{out}");

    // Again: nothing changes.
    let (ok, out, err) = run_cli(&args);
    assert!(ok, "{err}");
    assert!(out.contains("3 already imported"), "{out}");
    let (ok, out) = verify(&setup);
    assert!(ok && out.contains("(3 postings)"), "{out}");

    // The balances are there, as imported lots with the shop's expiry; no texts.
    let d = setup.start();
    let (_, ada) = admin_get(&d, "/v1/shops/demo/members/lookup?email=ada@example.com").await;
    assert_eq!(ada["points"]["available"], 111, "{ada}");
    let (_, bob) = admin_get(&d, "/v1/shops/demo/members/lookup?phone=%2B15145550177").await;
    assert_eq!(bob["points"]["available"], 50, "{bob}");
    assert_eq!(bob["first_name"], "Bob");
    assert!(bob["lots"][0]["expires_at"].is_string(), "{bob}");
    let (s, carol) = admin_get(&d, "/v1/shops/demo/members/lookup?phone=5145550199").await;
    assert_eq!((s, carol["points"]["available"].as_i64()), (200, Some(0)));
    let id = bob["id"].as_str().unwrap();
    let (_, l) = admin_get(&d, &format!("/v1/shops/demo/members/{id}/ledger")).await;
    assert_eq!(l["entries"][0]["kind"], "imported", "{l}");
    assert!(l["entries"][0]["idempotency_key"]
        .as_str()
        .unwrap()
        .starts_with("import:demo:"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !d.stdout_lines().iter().any(|l| l.contains("imported")),
        "imports text nobody"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_under_load_restores_to_a_verified_copy() {
    let setup = Setup::new(1024 * 1024);
    let d = setup.start();
    let base = d.base.clone();
    let config = setup.config_path().to_str().unwrap().to_string();
    post_shopify(&d, "demo", "orders/paid", "wh-0", &order(1), SHOPIFY_SECRET).await;

    // Webhooks keep arriving while the backup is taken.
    let d = std::sync::Arc::new(d);
    let load = {
        let d = d.clone();
        tokio::spawn(async move {
            let mut n = 0;
            for i in 0..150u64 {
                let (s, _) = post_shopify(
                    &d,
                    "demo",
                    "orders/paid",
                    &format!("wh-load-{i}"),
                    &order(1000 + i),
                    SHOPIFY_SECRET,
                )
                .await;
                assert_eq!(s, 200);
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let during = setup.dir.path().join("during.backup");
    let during_s = during.to_str().unwrap().to_string();
    let (ok, out, err) = {
        let (base, config, during_s) = (base.clone(), config.clone(), during_s.clone());
        tokio::task::spawn_blocking(move || {
            run_cli(&[
                "backup", "--config", &config, "--url", &base, "--out", &during_s,
            ])
        })
        .await
        .unwrap()
    };
    assert!(ok, "{err}");
    assert!(out.contains("backup written to"), "{out}");
    assert_eq!(load.await.unwrap(), 150);

    // Taken mid-load, it restores to a ledger that verifies.
    let copy = Setup::new(1024 * 1024);
    let copy_config = copy.config_path().to_str().unwrap().to_string();
    let (ok, out, err) = run_cli(&["restore", "--config", &copy_config, "--from", &during_s]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("shop demo: ok"), "{out}");

    // Taken when quiet, it restores to the same balances.
    let after = setup.dir.path().join("after.backup");
    let after_s = after.to_str().unwrap().to_string();
    let (ok, _, err) = {
        let (base, after_s) = (base.clone(), after_s.clone());
        tokio::task::spawn_blocking(move || {
            cli_env(
                &["backup", "--url", &base, "--out", &after_s],
                &[("LOYALTYD_TOKEN", ADMIN_TOKEN)],
            )
        })
        .await
        .unwrap()
    };
    assert!(ok, "{err}");
    let copy2 = Setup::new(1024 * 1024);
    let copy2_config = copy2.config_path().to_str().unwrap().to_string();
    let (ok, out, err) = run_cli(&["restore", "--config", &copy2_config, "--from", &after_s]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("shop demo: ok (151 postings)"), "{out}");
    let lookup = "/v1/shops/demo/members/lookup?email=ada@example.com";
    let (_, live) = admin_get(&d, lookup).await;
    let restored = copy2.start();
    let (_, back) = admin_get(&restored, lookup).await;
    assert_eq!(live["points"], back["points"]);
    assert_eq!(live["points"]["available"], 151 * 11);
    assert_eq!(live["lots"], back["lots"]);
    drop(restored);

    // A non-empty data directory is refused, and left alone.
    let (ok, _, err) = run_cli(&["restore", "--config", &copy2_config, "--from", &after_s]);
    assert!(!ok && err.contains("not empty"), "{err}");
    // A damaged file is refused before anything is written.
    let text = std::fs::read_to_string(&after).unwrap();
    let damaged = setup.dir.path().join("damaged.backup");
    std::fs::write(&damaged, text.replacen("\"v\":\"", "\"v\":\"AA", 1)).unwrap();
    let copy3 = Setup::new(1024 * 1024);
    let (ok, _, err) = run_cli(&[
        "restore",
        "--config",
        copy3.config_path().to_str().unwrap(),
        "--from",
        damaged.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("damaged"), "{err}");
    assert!(!copy3.dir.path().join("data").exists());

    // A read token may not take a backup.
    let (ok, _, err) = run_cli(&[
        "backup",
        "--url",
        &base,
        "--token",
        "nope-nope",
        "--out",
        &after_s,
    ]);
    assert!(!ok && err.contains("401"), "{err}");
}
