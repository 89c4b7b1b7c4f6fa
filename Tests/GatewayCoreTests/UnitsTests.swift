import Testing

@testable import GatewayCore

@Suite struct UnitsTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("30s", .seconds(30)),
        ("5m", .seconds(300)),
        ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)),
        ("1h15m", .seconds(4500)),
        ("2h0m5s100ms", .milliseconds(7_205_100)),
        ("0", .zero),
        (" 10s ", .seconds(10)),
    ])
    func parsesDurations(text: String, expected: Duration) throws {
        #expect(try Units.parseDuration(text) == expected)
    }

    @Test(arguments: ["", "5", "5x", "1.5s", "-1s", "s", "1s1m", "1m1m", "10 s x", "1d"])
    func rejectsBadDurations(text: String) {
        #expect(throws: UnitParseError.self) { try Units.parseDuration(text) }
    }

    @Test func durationErrorsSayWhatToWrite() {
        #expect(throws: UnitParseError(message: "invalid duration \"5x\": unknown unit \"x\" (use ms, s, m or h)")) {
            try Units.parseDuration("5x")
        }
        #expect(throws: UnitParseError(message: "invalid duration \"5\": missing unit after 5 (use ms, s, m or h)")) {
            try Units.parseDuration("5")
        }
    }

    @Test(arguments: [
        ("1048576", 1_048_576),
        ("20MiB", 20 * 1024 * 1024),
        ("20mib", 20 * 1024 * 1024),
        ("20 MiB", 20 * 1024 * 1024),
        ("1KiB", 1024),
        ("2GiB", 2 * 1024 * 1024 * 1024),
        ("1TiB", 1 << 40),
        ("512KB", 512_000),
        ("3MB", 3_000_000),
        ("1GB", 1_000_000_000),
        ("100B", 100),
        ("1.5KiB", 1536),
        ("0", 0),
    ])
    func parsesSizes(text: String, expected: Int) throws {
        #expect(try Units.parseSize(text) == expected)
    }

    @Test(arguments: ["", "MiB", "20M", "20K", "-5MiB", "1.3B", "1..5KiB", "99999999999999TiB", "20 MiBs", "twenty"])
    func rejectsBadSizes(text: String) {
        #expect(throws: UnitParseError.self) { try Units.parseSize(text) }
    }

    @Test(arguments: [
        (Duration.milliseconds(250), "250ms"),
        (.seconds(90), "1m30s"),
        (.seconds(3600), "1h"),
        (.milliseconds(3_723_004), "1h2m3s4ms"),
        (.zero, "0s"),
    ])
    func formatsDurations(duration: Duration, expected: String) throws {
        #expect(Units.format(duration) == expected)
        #expect(try Units.parseDuration(expected) == duration)
    }

    @Test(arguments: [(20 * 1024 * 1024, "20MiB"), (1536, "1536B"), (1024, "1KiB"), (3 << 30, "3GiB"), (0, "0B"), (7, "7B")])
    func formatsSizes(bytes: Int, expected: String) throws {
        #expect(Units.formatSize(bytes) == expected)
        #expect(try Units.parseSize(expected) == bytes)
    }
}
