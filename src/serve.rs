//! `loyaltyd serve`: open the ledger, start the notifier, serve HTTP, and shut down
//! cleanly on SIGINT/SIGTERM (stop accepting, finish in-flight requests, deliver what
//! is queued, flush sled).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::adapters::AdapterRegistry;
use crate::config::Config;
use crate::http::{router, AppState};
use crate::ledger::Ledger;
use crate::notify::worker;

/// Run the daemon until a shutdown signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let ledger = Ledger::open_with_cache(&config.storage.path, config.storage.cache_capacity_bytes)
        .with_context(|| {
            format!(
                "cannot open the ledger at {}",
                config.storage.path.display()
            )
        })?;
    for shop in &config.shops {
        ledger.set_rewards(&shop.id, shop.rules.current().rewards.clone());
    }
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let notifier = Arc::new(
        crate::notify::setup::build(
            &config,
            ledger.db(),
            Arc::new(ledger.clone()),
            metrics.clone(),
        )
        .context("cannot set up notifications")?,
    );
    let delivery = notifier.store.clone();
    let wakeup = worker::Wakeup::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let notifier = tokio::spawn(worker::run(notifier, wakeup.clone(), stop_rx));

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let shops: Vec<String> = config.shops.iter().map(|s| s.id.to_string()).collect();
    for s in &config.shops {
        for w in &s.rules.current().warnings {
            tracing::warn!(shop = %s.id, rules = %s.rules_path.display(), warning = %w, "rules file");
        }
    }
    tracing::info!(%addr, shops = ?shops, storage = %config.storage.path.display(), "loyaltyd started");
    if !config.storage.durable_acks {
        tracing::warn!("storage.durable_acks = false: webhooks are acknowledged before they are on disk (benchmarking only)");
    }
    let shutdown = shutdown_signal();
    // Tests and scripts read this line to learn the port when `listen` uses port 0.
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "loyaltyd listening on http://{addr}")?;
        out.flush()?;
    }

    let jobs = tokio::spawn(run_jobs(
        config.clone(),
        ledger.clone(),
        wakeup.clone(),
        stop_tx.subscribe(),
    ));
    let adapters = AdapterRegistry::from_config(&config)?;
    let retries = tokio::spawn(crate::retry::run(
        config.clone(),
        ledger.clone(),
        adapters.clone(),
        wakeup.clone(),
        stop_tx.subscribe(),
        Duration::from_secs(1),
    ));
    let state = Arc::new(AppState::new(
        config,
        ledger.clone(),
        wakeup,
        adapters,
        metrics,
        delivery,
    ));
    let watcher = tokio::spawn(watch_rules(state.clone(), stop_tx.subscribe()));
    // A storage failure stops the background writers at once, and the server once the
    // data directory takes writes again (sled needs a restart; see ledger::commit).
    let stop_background = stop_tx.clone();
    let storage = crate::ledger::commit::supervise(
        ledger.clone(),
        state.config.storage.path.clone(),
        move || {
            let _ = stop_background.send(true);
        },
    );
    let limits = crate::http::listen::ConnLimits {
        header_timeout: state.config.server.header_timeout,
        max_connections: state.config.server.max_connections,
        // Every request is answered or timed out (408) within the request timeout.
        drain: state.config.server.request_timeout + Duration::from_secs(5),
    };
    crate::http::listen::serve(listener, router(state), limits, async move {
        tokio::select! {
            _ = shutdown => {}
            _ = storage => {}
        }
    })
    .await;

    tracing::info!("shutting down: delivering queued notifications and flushing storage");
    let _ = stop_tx.send(true);
    let _ = jobs.await;
    let _ = retries.await;
    let _ = watcher.await;
    if let Err(e) = notifier.await {
        tracing::error!(error = %e, "notifier task failed");
    }
    if let Some(f) = ledger.commit_stats().and_then(|s| s.failure()) {
        return Err(crate::ledger::commit::StorageRestart(f.clone()).into());
    }
    ledger.flush_now().context("final flush failed")?;
    tracing::info!("loyaltyd stopped");
    Ok(())
}

/// Mature and expire points every `jobs.interval_secs`. Each member is one
/// transaction, so a stop half way leaves nothing half done.
async fn run_jobs(
    config: Config,
    ledger: Ledger,
    wakeup: worker::Wakeup,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (c, l) = (config.clone(), ledger.clone());
        let result =
            tokio::task::spawn_blocking(move || -> Result<u64, crate::ledger::LedgerError> {
                let now = chrono::Utc::now();
                let mut postings = 0;
                crate::ledger::retention::run(&l, &c, now);
                for s in &c.shops {
                    let rules = s.rules.current();
                    let jobs = crate::ledger::pass::MemberJobs {
                        policy: &rules.policy,
                        timezone: s.timezone,
                        tiers: rules.tiers.as_ref(),
                        birthday_points: rules.bonuses.birthday,
                        warning_days: c.notify.expiry_warning_days,
                    };
                    let done = l.member_jobs(&s.id, &jobs, now)?;
                    postings += done.postings + done.notices;
                }
                Ok(postings)
            })
            .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                if let Err(e) = ledger.durable().await {
                    tracing::error!(error = %e, "flush after jobs failed");
                }
                wakeup.wake();
                tracing::info!(postings = n, "maturation and expiry jobs posted");
            }
            Ok(Err(e)) => tracing::error!(error = %e, "maturation/expiry job failed; will retry"),
            Err(e) => tracing::error!(error = %e, "job task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.jobs_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reload a shop's rules on SIGHUP or when its file changes. A broken file is refused
/// (logged with file, line and key, counted in `loyaltyd_rules_reloads_total`) and the
/// rules in force stay.
async fn watch_rules(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = hangup => true,
            _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            _ = stop.changed() => return,
        };
        for shop in &state.config.shops {
            if !forced && !shop.rules.changed_on_disk() {
                continue;
            }
            match shop.rules.reload() {
                Ok((old, new)) => {
                    state.metrics.rules_reload(shop.id.as_str(), true);
                    state
                        .ledger
                        .set_rewards(&shop.id, shop.rules.current().rewards.clone());
                    tracing::info!(shop = %shop.id, %old, %new, "rules reloaded");
                    for w in &shop.rules.current().warnings {
                        tracing::warn!(shop = %shop.id, warning = %w, "rules file");
                    }
                }
                Err(e) => {
                    state.metrics.rules_reload(shop.id.as_str(), false);
                    tracing::error!(shop = %shop.id, error = %e, "rules file refused; the previous rules stay in force");
                }
            }
        }
    }
}

/// The SIGINT/SIGTERM handlers, registered at once: a signal arriving any time after
/// the "listening" line starts a graceful stop instead of killing the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = (
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()),
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()),
    );
    async move {
        #[cfg(unix)]
        let (ctrl_c, term) = {
            let (int, term) = handlers;
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            (wait(int, "SIGINT"), wait(term, "SIGTERM"))
        };
        #[cfg(not(unix))]
        let (ctrl_c, term) = (
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            std::future::pending::<()>(),
        );
        shutdown_select(ctrl_c, term).await
    }
}

async fn shutdown_select(
    ctrl_c: impl std::future::Future<Output = ()>,
    term: impl std::future::Future<Output = ()>,
) {
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
