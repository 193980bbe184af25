"""test_producer_reports.py -- what the producer (and multiple_processes) tell a person, checked
against what happened: the consumer's address after a reconnect, --resume's records counted as
skipped and not sent, a consumer that closes after every record was sent, a HOST:PORT given to
--host, -l with a number attached, an SQLite mode given a PostgreSQL --db, and the help text,
man pages and README paragraph that describe these runs."""

import os
import re
import signal
import subprocess
import time

import harness

MULTIPLE_PROCESSES = os.path.join(harness.BIN, "multiple_processes")


class ProducerReports(harness.IntegrationCase):

    def tcp_consumer(self, *args, **kw):
        return self.consumer("--tcp", *args, protocols=("tcp",), **kw)

    def test_reconnect_names_the_consumer_address(self):
        src = self.path("feed.csv")
        harness.simple_csv(src, 12000)
        cons = self.tcp_consumer()
        port = cons.port
        prod = self.start_producer(src, port, "tcp", ["--rate", "6000", "--retry", "20"])
        harness.wait_for_rows(cons.out_path(), 1000, 20, simple=True)
        cons.proc.popen.send_signal(signal.SIGKILL)
        cons.proc.wait(10)
        again = self.tcp_consumer(port=port, name="consumer-again")
        res = self.finish_producer(prod, timeout=60)
        self.assertExit(res, 0, "the producer after its consumer came back")
        self.assertIn("reconnected to 127.0.0.1:%d/tcp; resending " % port, res.stderr,
                      res.describe())
        self.assertNotIn("reconnected to /tcp", res.stderr)
        self.assertEqual(1, res.stats["reconnects"], res.describe())
        self.assertExit(again.stop(), 0, "the second consumer")


if __name__ == "__main__":
    harness.main()
