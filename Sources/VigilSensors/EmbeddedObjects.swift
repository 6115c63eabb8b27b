import VigilBPF
import VigilBPFObjects

/// Vigil's BPF objects embedded in the binary (bpf/NAME.bpf.c, compiled by `make generate`).
public enum EmbeddedObjects {
    /// The names of every embedded object.
    public static var names: [String] {
        (0..<vigil_objects_count()).compactMap { vigil_objects_at($0).map { String(cString: $0.pointee.name) } }
    }

    /// The bytes of object `name` (static: valid for the life of the process).
    public static func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        for i in 0..<vigil_objects_count() {
            guard let entry = vigil_objects_at(i)?.pointee, String(cString: entry.name) == name else { continue }
            return UnsafeRawBufferPointer(start: entry.bytes, count: Int(entry.size))
        }
        throw BPFError(.notFound, operation: "EmbeddedObjects.bytes", target: name, errno: 2,
                       message: "no embedded object named '\(name)' (have: \(names.joined(separator: ", ")))")
    }

    /// Opens embedded object `name` without copying it.
    public static func open(_ name: String) throws -> BPFObject {
        try BPFObject(staticBytes: bytes(name), name: name)
    }
}
