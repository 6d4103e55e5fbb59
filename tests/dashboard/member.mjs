// Browser test of the dashboard, run by tests/dashboard_e2e.rs:
//   node tests/dashboard/member.mjs BASE_URL TOKEN SCREENSHOT_PATH
// Drives Debian's Chromium (CHROMIUM, default /usr/bin/chromium) headless through
// playwright-core: logs in with TOKEN, searches ada@example.com, opens the member,
// reads the balance (11), redeems free-coffee, checks the balance shows 6, and saves a
// screenshot of the member page. Exits non-zero with a message on any failure.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, token, screenshot] = process.argv.slice(2);
if (!base || !token || !screenshot) {
  console.error("usage: node member.mjs BASE_URL TOKEN SCREENSHOT_PATH");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "loyaltyd-dashboard-chromium-"));

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
  console.log(`ok - ${what}`);
}

// A fresh profile directory each run (playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  viewport: { width: 1280, height: 900 },
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  // The dashboard loads nothing from elsewhere: any request off the daemon fails the test.
  const foreign = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) foreign.push(r.url());
  });
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));

  // Not logged in: the dashboard sends us to the login page.
  await page.goto(`${base}/dashboard/shops/demo`);
  expect(new URL(page.url()).pathname === "/dashboard/login", "a redirect to the login page");

  await page.fill("#token", token);
  await Promise.all([page.waitForURL(/\/dashboard\/shops\/demo$/), page.click("button[type=submit]")]);
  expect((await page.textContent("h1")).includes("demo"), "the shop overview after logging in");
  expect(await page.isVisible("#liability-chart"), "the liability chart");
  expect((await page.textContent("#webhook-health")).includes("shopify"), "webhook health for shopify");

  // Search by e-mail from the header's search box.
  await page.fill("input[name=q]", "ada@example.com");
  await Promise.all([page.waitForURL(/\/members\?q=/), page.press("input[name=q]", "Enter")]);
  const rows = await page.locator("#members tbody tr").count();
  expect(rows === 1, `one search result (got ${rows})`);
  expect((await page.textContent("#members")).includes("ada@example.com"), "the member's e-mail in the results");

  await Promise.all([page.waitForURL(/\/members\/m_[0-9a-f]{20}$/), page.click("a.member-link")]);
  const before = (await page.textContent("#balance-available")).trim();
  expect(before === "11", `the balance 11 (got ${before})`);
  expect((await page.textContent("#member-name")).includes("Ada"), "the member's name");
  const lots = await page.textContent("#lots");
  expect(/\d{4}-\d{2}-\d{2}/.test(lots) && !lots.includes("no fixed expiry"), "a lot with its expiry date");
  expect((await page.textContent("#history")).includes("earn.base"), "the earning explained by its rule");

  await page.selectOption("#redeem-reward", "free-coffee");
  await Promise.all([page.waitForURL(/\?done=\d+$/), page.click("#redeem-submit")]);
  const after = (await page.textContent("#balance-available")).trim();
  expect(after === "6", `the balance 6 after redeeming free-coffee (got ${after})`);
  const flash = await page.textContent("#flash");
  expect(flash.includes("Free coffee") && flash.includes("6 available"), `the flash message (${flash.trim()})`);
  expect((await page.textContent("#history")).includes("Reward: Free coffee"), "the redemption in the history");

  await page.screenshot({ path: screenshot, fullPage: true });
  expect(true, `screenshot saved to ${screenshot}`);
  expect(foreign.length === 0, `no request left the daemon (${foreign.join(", ")})`);
  expect(consoleErrors.length === 0, `no console errors (${consoleErrors.join(" | ")})`);
} catch (e) {
  failed = true;
  console.error(`not ok - ${e.message}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
