import Foundation

/// A C program of Tests/Fixtures that could not be compiled.
public struct FixtureBuildFailed: Error, CustomStringConvertible {
    /// The command and its status.
    public var description: String
}

/// Compiles Tests/Fixtures/`name`.c with cc and `flags`, linked with `libraries` (e.g. `-lreadline`,
/// after the source), into a temporary file, and returns its path.
public func compileFixture(_ name: String, flags: [String] = [], libraries: [String] = []) throws -> String {
    let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Tests/Fixtures/\(name).c").path
    let binary = NSTemporaryDirectory() + "\(name)-\(getpid())"
    let cc = Process()
    cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
    cc.arguments = ["-O1", "-Wall", "-Werror"] + flags + ["-o", binary, source] + libraries
    try cc.run()
    cc.waitUntilExit()
    guard cc.terminationStatus == 0 else {
        throw FixtureBuildFailed(description: "cc \((cc.arguments ?? []).joined(separator: " ")) failed (status \(cc.terminationStatus))")
    }
    return binary
}
