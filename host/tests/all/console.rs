//! The operator console in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`, Debian's `chromium` and `chromium-driver`, installed by `scripts/setup`),
//! against a host wired to the 3CX simulator and a receiver that first answers 404.
//!
//! With `CALLHOOK_UPDATE_DOCS=1` the test also writes its screenshots to `docs/console/`.

use crate::support::Sink;
use callhook::app::local::{LocalHost, LocalSetup};
use callhook_simulator::{Scenario, SimConfig, Simulator};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "console-test-token";
/// Scenario 1 lasts 65 s: 5 s here, long enough to be seen live.
const TIME_SCALE: f64 = 0.08;
/// How long the browser waits for a page to show something.
const PATIENCE: Duration = Duration::from_secs(15);

/// `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        assert!(
            Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
            "the browser test needs {CHROMIUM} and {CHROMEDRIVER}: run scripts/setup \
             (apt-get install chromium chromium-driver)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless Chromium session (chromedriver may take a moment to listen).
    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("chromedriver did not open a session at {}", self.url);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for an element matching `css` and returns its text. The live script may swap the
/// element out between finding and reading it: then it is found again.
async fn wait_for(browser: &Client, css: &str) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} did not appear"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the first element matching `css` once it is there (found again when swapped out).
async fn click(browser: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && element.click().await.is_ok()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} could not be clicked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Saves the page as `docs/console/NAME.png` when asked to update the docs.
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var_os("CALLHOOK_UPDATE_DOCS").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_live_call_and_a_parked_delivery_that_a_click_retries() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver = Driver::start();
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let simulator = Simulator::start(SimConfig::default()).await.unwrap();
    simulator.add_directory(&scenario.directory());
    let sink = Sink::start().await;
    sink.answer(404);
    let host = LocalHost::start(
        &simulator,
        LocalSetup {
            grace: Duration::from_millis(300),
            admin_token: Some(TOKEN.to_owned()),
            ..LocalSetup::webhook(sink.origin(), sink.url("/switch/events"))
        },
    )
    .await
    .unwrap();
    let console = format!(
        "http://{}",
        host.console_address().expect("the console listens")
    );

    // Without the token: pages send to the login form, the rest is refused.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = plain
        .get(format!("{console}/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login");
    let stream = plain.get(format!("{console}/events")).send().await.unwrap();
    assert_eq!(stream.status(), 401);
    let action = plain
        .post(format!("{console}/deliveries/retry"))
        .form(&[("id", "1"), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(action.status(), 401);
    let wrong = plain
        .get(format!("{console}/"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 303);
    let right = plain
        .get(format!("{console}/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    // A bearer request is not a browser's: it needs no CSRF token, but a wrong one does not help
    // a session without it either (checked in the unit tests).

    let browser = driver.browser().await;
    browser.goto(&format!("{console}/calls")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/login");
    screenshot(&browser, "login").await;
    browser
        .find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    click(&browser, "#login").await;
    assert_eq!(wait_for(&browser, "#connection").await, "connected");
    let html = browser.source().await.unwrap();
    assert!(!html.contains(TOKEN), "the console never shows its token");
    assert!(
        !html.contains(&simulator.config().client_secret),
        "nor the PBX's secret"
    );

    // A live call appears on the Calls page and ends, without reloading.
    browser.goto(&format!("{console}/calls")).await.unwrap();
    wait_for(&browser, "#no-live-calls").await;
    let watch = async {
        let live = wait_for(&browser, "tr.live-call").await;
        screenshot(&browser, "calls").await;
        wait_for(&browser, "#no-live-calls").await;
        live
    };
    let (played, live) = tokio::join!(simulator.play(&scenario, TIME_SCALE), watch);
    played.unwrap();
    assert!(
        live.contains("talking") || live.contains("offered"),
        "{live}"
    );
    let recent = wait_for(&browser, "#recent").await;
    assert!(recent.contains("incoming"), "{recent}");

    // The receiver answers 404: the deliveries are parked, shown on the Deliveries page.
    browser
        .goto(&format!("{console}/deliveries"))
        .await
        .unwrap();
    wait_for(&browser, "tr.delivery[data-status=parked]").await;
    let mut rows = Vec::new();
    for row in browser
        .find_all(Locator::Css("tr.delivery[data-status=parked]"))
        .await
        .unwrap()
    {
        rows.push(row.attr("id").await.unwrap().expect("each row has an id"));
    }
    let parked = rows.len();
    let events = scenario_events(&host);
    assert!(
        parked >= 1 && parked == events,
        "{parked} parked of {events}"
    );
    screenshot(&browser, "deliveries").await;

    // The receiver recovers; a click on each Retry delivers them.
    sink.answer(200);
    for (retried, row) in rows.iter().enumerate() {
        click(&browser, &format!("#{row} button.retry")).await;
        // The action answers with a redirect to the page, which says what it did.
        assert!(
            wait_for(&browser, "#done")
                .await
                .contains("attempted again")
        );
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while sink.successes().len() <= retried {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{row} not delivered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Delivered, it leaves the page (told by the live stream).
        while browser.find(Locator::Css(&format!("#{row}"))).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "{row} still listed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    wait_for(&browser, "#no-deliveries").await;
    sink.wait_for_successes(parked).await;
    browser.goto(&format!("{console}/")).await.unwrap();
    let plugins = wait_for(&browser, "#plugins").await;
    assert!(
        plugins.contains(&format!("{parked}")),
        "delivered count on the Overview: {plugins}"
    );
    let overview = browser.source().await.unwrap();
    for shown in [
        "Frames received</th><td>",
        ", the last 20",
        "; the current one expires 20",
    ] {
        assert!(
            overview.contains(shown),
            "{shown:?} not on the Overview:\n{overview}"
        );
    }
    screenshot(&browser, "overview").await;

    browser.close().await.unwrap();
    host.stop().await.unwrap();
}

/// How many deliveries the queue holds now (each of scenario 1's events, once).
fn scenario_events(host: &LocalHost) -> usize {
    host.queue()
        .list(&callhook::queue::DeliveryFilter::default())
        .unwrap()
        .len()
}
