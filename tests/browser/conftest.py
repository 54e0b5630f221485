"""Browser tests wait for what the page shows with a generous deadline: a busy machine renders slowly, and
Playwright's default of 5 s for `expect` made the journey fail beside other work while it passed alone."""

from playwright.sync_api import expect

expect.set_options(timeout=60_000)
