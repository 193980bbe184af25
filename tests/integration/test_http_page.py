"""test_http_page.py -- the live page in a real browser: headless Chromium loads consumer
--http's page while a TCP and a UDP producer run, and the numbers it draws (elements with ids,
read from the DOM Chromium dumps) match /stats.json: those of the reading the page drew, and,
once the producers are done, the consumer's /stats.json itself. A screenshot is saved in the
test's folder (CSVSTREAM_PAGE_SHOT copies it elsewhere). Without Chromium (Debian's chromium
package) it prints the reason and exits with SKIP_CODE, which ctest reports as skipped."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import harness

SKIP_CODE = 77
NUMBERS = ["sent", "received", "lost", "duplicates", "reordered", "p50", "p99"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class PageTest(harness.IntegrationCase):

    def browse(self, url, what, budget_ms):
        """Run headless Chromium on url with a new empty profile: the DOM after budget_ms of
        the page's (virtual) time, and a screenshot when what == "screenshot"."""
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.dir)
        argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile,
                "--virtual-time-budget=%d" % budget_ms]
        if what == "screenshot":
            shot = self.path("page.png")
            argv += ["--screenshot=" + shot, "--window-size=1200,900", url]
        else:
            argv += ["--dump-dom", url]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        self.assertEqual(res.returncode, 0, "chromium failed: %s" % res.stderr[-2000:])
        return res.stdout

    def drawn(self, dom):
        """{protocol: {number: value}} from the page's elements, and the JSON it drew."""
        out = {}
        for proto in ("tcp", "udp"):
            out[proto] = {}
            for name in NUMBERS:
                m = re.search(r'id="%s-%s" data-value="([0-9]+)"' % (proto, name), dom)
                self.assertIsNotNone(m, "no %s-%s in the page" % (proto, name))
                out[proto][name] = int(m.group(1))
        m = re.search(r'<pre id="last-json" hidden="">(.*?)</pre>', dom, re.S)
        self.assertIsNotNone(m, "the page holds no reading of /stats.json")
        return out, json.loads(html.unescape(m.group(1)))

    def check(self, drawn, doc, what):
        for proto in ("tcp", "udp"):
            p = doc[proto]
            expected = {"sent": p["received"] + p["lost"], "received": p["received"],
                        "lost": p["lost"], "duplicates": p["duplicates"],
                        "reordered": p["reordered"], "p50": p["latency_us"]["p50"],
                        "p99": p["latency_us"]["p99"]}
            self.assertEqual(drawn[proto], expected, "%s, %s" % (what, proto))

    def test_page_draws_the_numbers_of_stats_json(self):
        port = harness.free_port()
        cons = self.consumer("--http", str(port))
        url = "http://127.0.0.1:%d/" % port
        src = self.path("src.csv")
        harness.simple_csv(src, 3000)  # 6 s at 500 a second: the screenshot sees them run
        tcp = self.start_producer(src, cons.port, "tcp", ["--rate", "500"])
        udp = self.start_producer(src, cons.port, "udp", ["--rate", "500", "--impair",
                                                          "loss=0.05,dup=0.03,reorder=0.05"])
        time.sleep(1.0)
        # While they run: the page draws what its last reading said.
        dom = self.browse(url, "dom", 4000)
        drawn, doc = self.drawn(dom)
        self.check(drawn, doc, "while the producers run")
        self.assertGreater(drawn["tcp"]["received"], 0)
        self.assertGreater(drawn["udp"]["received"], 0)
        polls = int(re.search(r'data-polls="([0-9]+)"', dom).group(1))
        self.assertGreaterEqual(polls, 2, "the page read /stats.json %d times" % polls)
        self.browse(url, "screenshot", 8000)
        self.assertTrue(os.path.getsize(self.path("page.png")) > 10000)
        if os.environ.get("CSVSTREAM_PAGE_SHOT"):
            shutil.copy(self.path("page.png"), os.environ["CSVSTREAM_PAGE_SHOT"])
        self.assertExit(self.finish_producer(tcp), 0, "tcp producer")
        self.assertExit(self.finish_producer(udp), 0, "udp producer")
        time.sleep(0.5)
        # Done: the page's numbers are the consumer's /stats.json now.
        drawn, _ = self.drawn(self.browse(url, "dom", 2500))
        with urllib.request.urlopen(url + "stats.json", timeout=10) as r:
            live = json.loads(r.read())
        self.check(drawn, live, "after the producers")
        self.assertEqual(drawn["tcp"]["received"], 3000)
        self.assertGreater(drawn["udp"]["lost"], 0)
        res = cons.stop()
        self.assertExit(res, 0, "consumer")
        self.check(drawn, res.stats, "the final --stats-json")


if __name__ == "__main__":
    if chromium() is None:
        print("skipped: no headless browser (apt-get install chromium)")
        sys.exit(SKIP_CODE)
    probe = subprocess.run([harness.CONSUMER, "--http", "1", "--help"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        print("skipped: this consumer has no --http: %s" % probe.stderr.strip())
        sys.exit(SKIP_CODE)
    unittest.main(verbosity=2)
