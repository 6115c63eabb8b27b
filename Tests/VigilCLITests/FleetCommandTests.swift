import Foundation
import VigilTestSupport
import XCTest

/// `vigil fleet alerts`' refusals: each names what to fix, before or at the first connection.
final class FleetCommandTests: XCTestCase {
    func testBadOptionsAndAnUnreachableServerAreErrorsThatSayWhy() throws {
        let port = try Loopback.freePort()  // nothing listens there
        let cases: [([String], String)] = [
            (["--user", "ops"], "--user needs --password-env"),
            (["--priority", "loud"], "unknown priority 'loud'"),
            (["--server", "http://127.0.0.1:4222"], "is not a nats://host:port or tls://host:port address"),
            (["--user", "ops", "--password-env", "VIGIL_TEST_UNSET_\(port)"], "VIGIL_TEST_UNSET_\(port) is not set or empty"),
            (["--server", "nats://127.0.0.1:\(port)"], "connect 127.0.0.1:\(port)"),
        ]
        for (arguments, expected) in cases {
            let result = try CLITests.vigil(["fleet", "alerts"] + arguments)
            XCTAssertNotEqual(result.status, 0, "\(arguments)")
            XCTAssertTrue(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
    }
}
