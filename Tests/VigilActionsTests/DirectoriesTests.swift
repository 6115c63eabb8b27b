import Foundation
import VigilActions
import VigilTestSupport
import XCTest

/// `Directories.create`: `mkdir -p -m` for the directories the daemon writes to.
final class DirectoriesTests: XCTestCase {
    /// VigilTestSupport's temporary directory, removed when the test ends.
    private func scratch() throws -> String {
        let path = try temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func mode(_ path: String) throws -> Int {
        try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    func testMissingParentsAreCreatedWithTheModeWhateverTheUmask() throws {
        let base = try scratch()
        let previous = umask(0o077)
        defer { umask(previous) }
        try Directories.create(base + "/etc/vigil/rules.d")
        for path in [base + "/etc", base + "/etc/vigil", base + "/etc/vigil/rules.d"] {
            XCTAssertEqual(try mode(path), 0o755, path)
        }
        try Directories.create(base + "/run//vigil/", mode: 0o700)
        XCTAssertEqual(try mode(base + "/run/vigil"), 0o700)
    }

    func testExistingDirectoriesKeepTheirModeAndAFileInTheWayIsNamed() throws {
        let base = try scratch()
        try FileManager.default.createDirectory(atPath: base + "/kept", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o750])
        try Directories.create(base + "/kept/new")
        XCTAssertEqual(try mode(base + "/kept"), 0o750, "an existing directory is not changed")
        XCTAssertEqual(try mode(base + "/kept/new"), 0o755)

        _ = FileManager.default.createFile(atPath: base + "/file", contents: Data())
        XCTAssertThrowsError(try Directories.create(base + "/file/rules.d")) { error in
            XCTAssertEqual("\(error)", "\(base)/file: exists and is not a directory")
        }
    }
}
