import Foundation

/// A command on a new pseudo-terminal, under util-linux `script -qfc COMMAND /dev/null`: lines
/// written to its standard input reach the command as if typed on a terminal (an interactive
/// bash reads them with readline). Output is discarded.
public struct PtyTerminal {
    /// The `script` process.
    public let process: Process
    /// Where lines are typed.
    public let input: FileHandle

    /// Starts `command` (run by `script -qfc`) on a new pty.
    public init(_ command: String) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qfc", command, "/dev/null"]
        let pipe = Pipe()
        process.standardInput = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        input = pipe.fileHandleForWriting
        try process.run()
    }

    /// Types `line` and Enter.
    public func type(_ line: String) { input.write(Data((line + "\n").utf8)) }

    /// Types `exit` and waits for the command (and `script`) to end.
    public func exit() {
        type("exit")
        process.waitUntilExit()
        try? input.close()
    }

    /// Runs `command` on a new pty, types `lines`, then `exit`, and waits for it to end.
    public static func run(_ command: String, typing lines: [String]) throws {
        let terminal = try PtyTerminal(command)
        lines.forEach(terminal.type)
        terminal.exit()
    }
}
