import ArgumentParser
import Foundation
import VigilContainers

/// `vigil containers`.
struct Containers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Containers Vigil knows.", subcommands: [List.self], defaultSubcommand: List.self)

    /// `vigil containers ls`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List running containers: id, name, image, runtime, pids.")
        @Flag(help: "Print JSON lines.") var json = false

        func run() throws {
            let docker = DockerClient()
            let containers: [DockerContainerSummary]
            do {
                containers = try docker.containers()
            } catch {
                throw ValidationError("cannot list containers: \(error)")
            }
            if !json { print("CONTAINER ID   NAME                 IMAGE                RUNTIME   PIDS") }
            for c in containers {
                let pids = ContainerPIDs.of(c.id)
                let name = c.names.first.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 } ?? ""
                if json {
                    let object: [String: Any] = ["id": c.id, "name": name, "image": c.image, "runtime": "docker", "pids": pids]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    func col(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
                    print(col(String(c.id.prefix(12)), 15) + col(name, 21) + col(c.image, 21) + col("docker", 10)
                          + pids.map(String.init).joined(separator: ","))
                }
            }
        }
    }
}

/// The pids of a container, from /proc/*/cgroup.
enum ContainerPIDs {
    static func of(_ id: String) -> [Int] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int.init).filter { pid in
            ContainerIdentity.ofProcess(Int32(pid))?.id == id
        }.sorted()
    }
}
