"""Tests of recordsfile.py on the fixtures the Go driver is tested on
(testdata/records/expected.json). Run: python3 -m unittest recordsfile_test (in loadtest/;
`go test ./loadtest/` runs it)."""

import json
import os
import unittest

from recordsfile import RecordsFileError, parse_ram_unit, parse_records_file, read_records_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "testdata", "records")


class Fixtures(unittest.TestCase):
    def test_fixtures(self):
        with open(os.path.join(FIXTURES, "expected.json"), encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        self.assertGreaterEqual(len(cases), 8)
        for c in cases:
            with self.subTest(file=c["file"]):
                path = os.path.join(FIXTURES, c["file"])
                if c.get("error"):
                    with self.assertRaises(RecordsFileError) as cm:
                        read_records_file(path)
                    self.assertIn(c["error"], str(cm.exception))
                    if "unit" in c["error"]:
                        self.assertIn("--ram-unit", str(cm.exception))
                    continue
                rf = read_records_file(path)
                self.assertEqual(len(rf.records), c["records"])
                self.assertEqual(rf.converted, c["converted"])
                self.assertEqual(rf.unit, c["unit"])
                self.assertEqual(rf.wrapper, c["wrapper"])
                self.assertIn(c["layout"], rf.layout)
                self.assertIn(c["reason"], rf.unit_reason)
                for k, v in c["first"].items():
                    self.assertEqual(rf.records[0].get(k), v, k)

    def test_flag_wins(self):
        rf = read_records_file(os.path.join(FIXTURES, "peer-kib-metrics.json"), "mib")
        self.assertEqual(rf.converted, 0)
        self.assertEqual(rf.records[0]["total_ram"], 4018904)
        self.assertEqual(rf.unit_reason, "given by --ram-unit")

    def test_units(self):
        self.assertEqual(parse_ram_unit("KB"), "kib")
        self.assertEqual(parse_ram_unit(""), "auto")
        with self.assertRaises(ValueError):
            parse_ram_unit("GiB")

    def test_layout_errors(self):
        for text, want in [("", "empty"), ("nope", "not JSON"), ("[1, 2]", "element 0"),
                           ('{"a": 1}\nx', "line 2: not a JSON object"), ('{"metrics": 3}', "not an array"),
                           ('{"a": [{}], "b": [{}]}', "neither a record nor holds records")]:
            with self.subTest(text=text):
                with self.assertRaises(RecordsFileError) as cm:
                    parse_records_file(text)
                self.assertIn(want, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
