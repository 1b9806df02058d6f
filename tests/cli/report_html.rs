//! The HTML report, opened in a real browser (headless Chromium): what is drawn, not only what
//! the HTML says. The page is laid out by Chromium; a test-only script injected into a copy
//! reads back the boxes and computed colours of the bars, and a screenshot of the untouched
//! page is checked pixel by pixel where the anomalous bar is. Chromium is required: without it
//! this test fails (scripts/test.sh installs the Debian package `chromium`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::campaigns::{self, HISTORY};
use crate::common::*;
use serde_json::Value;

const RED: [u8; 3] = [0xd6, 0x27, 0x28];
const BLUE: [u8; 3] = [0x3b, 0x6e, 0xa5];
const WINDOW: (u32, u32) = (1400, 2200);

/// Reads layout after Chromium has laid the page out, and leaves it in the DOM for
/// `--dump-dom` to print.
const HOOK: &str = r#"<script>
(function () {
  function box(el) { var r = el.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; }
  function onTop(el) {
    var r = el.getBoundingClientRect();
    var hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    return hit === el || (hit !== null && hit.parentNode === el);
  }
  var out = {bars: [], days: [], optouts: [], rows: [], swatches: {}};
  document.querySelectorAll('#rate-chart rect.bar').forEach(function (el) {
    out.bars.push({campaign: el.dataset.campaign, anomaly: el.classList.contains('anomaly'),
      rate: parseFloat(el.dataset.rate), fill: getComputedStyle(el).fill, box: box(el), on_top: onTop(el)});
  });
  document.querySelectorAll('#daily-chart rect.day-bar').forEach(function (el) {
    out.days.push({date: el.dataset.date, sent: parseInt(el.dataset.sent, 10), box: box(el), on_top: onTop(el)});
  });
  document.querySelectorAll('#daily-chart circle.day-optouts').forEach(function (el) {
    out.optouts.push({date: el.dataset.date, opt_outs: parseInt(el.dataset.optOuts, 10), box: box(el)});
  });
  document.querySelectorAll('#campaigns tbody tr').forEach(function (el) {
    out.rows.push({campaign: el.dataset.campaign, anomaly: el.classList.contains('anomaly'),
      background: getComputedStyle(el.cells[0]).backgroundColor});
  });
  ['legend-normal', 'legend-anomaly'].forEach(function (c) {
    var s = document.querySelector('.' + c + ' .swatch');
    out.swatches[c] = s ? {colour: getComputedStyle(s).backgroundColor, box: box(s)} : null;
  });
  out.line = !!document.querySelector('#daily-chart polyline.optout-line');
  var pre = document.createElement('pre');
  pre.id = 'layout-report';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"));
    let found = Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "headless Chromium is required for the report test and {} was not found: \
         `apt-get install -y --no-install-recommends chromium` (scripts/test.sh does it), \
         or set CHROMIUM to its path",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `extra` flags; returns stdout.
fn run_chromium(page: &Path, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--force-color-profile=srgb",
            &format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

fn layout_of(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    let hooked = page.with_file_name("hooked.html");
    std::fs::write(&hooked, html.replace("</body>", &format!("{HOOK}</body>"))).unwrap();
    let dom = run_chromium(&hooked, &["--dump-dom".to_string()]);
    let start = dom
        .find("<pre id=\"layout-report\">")
        .unwrap_or_else(|| panic!("the hook did not run; DOM:\n{dom}"))
        + "<pre id=\"layout-report\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap()
}

/// The screenshot as rows of RGB.
fn screenshot(page: &Path) -> (u32, u32, Vec<u8>) {
    let shot = page.with_file_name("shot.png");
    run_chromium(page, &[format!("--screenshot={}", shot.display())]);
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "unexpected PNG colour type {:?}",
        info.color_type
    );
    let mut rgb = Vec::with_capacity((info.width * info.height * 3) as usize);
    for px in buf[..info.buffer_size()].chunks(channels) {
        rgb.extend_from_slice(&px[..3]);
    }
    (info.width, info.height, rgb)
}

fn pixel(shot: &(u32, u32, Vec<u8>), x: f64, y: f64) -> [u8; 3] {
    let (w, h, rgb) = shot;
    let (x, y) = (x.round() as u32, y.round() as u32);
    assert!(x < *w && y < *h, "({x},{y}) outside the {w}×{h} screenshot");
    let i = ((y * w + x) * 3) as usize;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 6)
}

fn css_rgb(c: [u8; 3]) -> String {
    format!("rgb({}, {}, {})", c[0], c[1], c[2])
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn the_report_draws_the_anomalous_campaign_in_red_with_the_daily_series() {
    let env = Env::new();
    env.ingest(&campaigns::history());
    let page = env.dir.path().join("report.html");
    env.ok(&[
        "stats",
        "--tenant",
        PHONE_NUMBER_ID,
        "--html",
        page.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing for the browser to fetch, no script.
    for needle in ["<script", "<link", "src=", "url(", "@import", "https://"] {
        assert!(!html.contains(needle), "the report contains {needle:?}");
    }
    assert_eq!(
        html.matches("http://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "only SVG namespaces may name a URL"
    );

    let layout = layout_of(&page);
    let bars = layout["bars"].as_array().unwrap();
    assert_eq!(bars.len(), HISTORY.len(), "{layout}");
    let flagged: Vec<&Value> = bars.iter().filter(|b| b["anomaly"] == true).collect();
    assert_eq!(flagged.len(), 1, "{layout}");
    let flash = flagged[0];
    assert_eq!(flash["campaign"], "flash-sale");
    assert_eq!(flash["fill"], css_rgb(RED));
    let baseline = f(&flash["box"]["y"]) + f(&flash["box"]["h"]);
    for b in bars {
        assert_eq!(b["on_top"], true, "bar {} is hidden: {b}", b["campaign"]);
        assert!(f(&b["box"]["w"]) > 10.0, "{b}");
        if b["anomaly"] == false {
            assert_eq!(b["fill"], css_rgb(BLUE), "{b}");
        }
        // One baseline, heights in proportion to the rates, the flagged bar the tallest but one
        // (the 30-send test campaign has a higher rate and is deliberately not flagged).
        let bottom = f(&b["box"]["y"]) + f(&b["box"]["h"]);
        assert!((bottom - baseline).abs() < 1.0, "{b}");
        let expected = f(&b["rate"]) / f(&flash["rate"]) * f(&flash["box"]["h"]);
        assert!((f(&b["box"]["h"]) - expected).abs() < 1.5, "{b}");
    }
    let vip = bars.iter().find(|b| b["campaign"] == "vip-test").unwrap();
    assert!(f(&vip["box"]["h"]) > f(&flash["box"]["h"]));
    assert_eq!(vip["anomaly"], false);
    // The legend explains the colour.
    assert_eq!(layout["swatches"]["legend-anomaly"]["colour"], css_rgb(RED));
    assert_eq!(layout["swatches"]["legend-normal"]["colour"], css_rgb(BLUE));

    // Daily series: one bar per day with sends, heights in proportion, and the opt-out line.
    let days = layout["days"].as_array().unwrap();
    assert_eq!(days.len(), HISTORY.len(), "{layout}");
    let most = days.iter().max_by_key(|d| d["sent"].as_u64()).unwrap();
    for d in days {
        assert_eq!(d["on_top"], true, "{d}");
        let expected = f(&d["sent"]) / f(&most["sent"]) * f(&most["box"]["h"]);
        assert!((f(&d["box"]["h"]) - expected).abs() < 1.5, "{d}");
    }
    let xs: Vec<f64> = days.iter().map(|d| f(&d["box"]["x"])).collect();
    assert!(
        xs.windows(2).all(|w| w[0] < w[1]),
        "days out of order: {xs:?}"
    );
    assert_eq!(layout["line"], true);
    let optouts = layout["optouts"].as_array().unwrap();
    let peak = optouts
        .iter()
        .min_by(|a, b| f(&a["box"]["y"]).total_cmp(&f(&b["box"]["y"])));
    let flash_day = days
        .iter()
        .position(|d| d["date"] == peak.unwrap()["date"])
        .unwrap();
    assert_eq!(
        HISTORY[flash_day].id, "flash-sale",
        "the opt-out peak is on the flash sale's day"
    );

    // The table: every campaign, the flagged row highlighted.
    let rows = layout["rows"].as_array().unwrap();
    assert_eq!(rows.len(), HISTORY.len());
    for r in rows {
        assert_eq!(r["anomaly"], r["campaign"] == "flash-sale", "{r}");
    }
    let highlighted = rows.iter().find(|r| r["anomaly"] == true).unwrap();
    let plain = rows.iter().find(|r| r["anomaly"] == false).unwrap();
    assert_ne!(highlighted["background"], plain["background"]);

    // What reaches the screen: the untouched page, screenshotted.
    let shot = screenshot(&page);
    // REPORT_HTML_KEEP=DIR keeps the page and its screenshot for a person to look at.
    if let Some(dir) = std::env::var_os("REPORT_HTML_KEEP") {
        let dir = PathBuf::from(dir);
        std::fs::copy(&page, dir.join("report.html")).unwrap();
        std::fs::copy(page.with_file_name("shot.png"), dir.join("report.png")).unwrap();
    }
    let centre = |b: &Value| {
        (
            f(&b["box"]["x"]) + f(&b["box"]["w"]) / 2.0,
            f(&b["box"]["y"]) + f(&b["box"]["h"]) / 2.0,
        )
    };
    let (x, y) = centre(flash);
    assert!(
        close(pixel(&shot, x, y), RED),
        "{:?} at the flagged bar",
        pixel(&shot, x, y)
    );
    for b in bars.iter().filter(|b| b["anomaly"] == false) {
        let (x, y) = centre(b);
        let p = pixel(&shot, x, y);
        assert!(close(p, BLUE), "{p:?} at bar {}", b["campaign"]);
    }
    // Above the flagged bar is the chart background, not more red.
    let above = pixel(&shot, x, f(&flash["box"]["y"]) - 3.0);
    assert!(!close(above, RED), "{above:?} above the flagged bar");
}

#[test]
fn an_empty_tenant_renders_a_page_without_bars() {
    let env = Env::new();
    let page = env.dir.path().join("empty.html");
    env.ok(&[
        "stats",
        "--tenant",
        "nobody",
        "--html",
        page.to_str().unwrap(),
    ]);
    let layout = layout_of(&page);
    assert_eq!(layout["bars"].as_array().unwrap().len(), 0);
    assert_eq!(layout["rows"].as_array().unwrap().len(), 0);
}
