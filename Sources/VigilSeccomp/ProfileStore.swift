import Foundation
import VigilActions

/// Profiles kept per image: DIRECTORY/<image>.json (default /var/lib/vigil/seccomp), the image
/// reference with every character other than letters, digits, `.`, `-` and `_` made `_`. A new
/// recording of an image is merged into what is kept (runs add up: a fleet learns its profiles).
/// Beside each, DIRECTORY/<image>.meta (JSON, not the profile's) keeps the reference as given and
/// the count of runs merged.
public struct ProfileStore: Sendable {
    /// The directory.
    public var directory: String

    /// The store under `root` (`/`, or the daemon's `--root`): ROOT/var/lib/vigil/seccomp.
    public init(root: String = "/") {
        var base = root
        while base.hasSuffix("/") { base.removeLast() }
        directory = base + "/var/lib/vigil/seccomp"
    }

    /// The store in `directory`.
    public init(directory: String) { self.directory = directory }

    /// The file name for `image`.
    public static func fileName(for image: String) -> String {
        String(image.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" ? $0 : "_" }) + ".json"
    }

    /// The path of `image`'s profile.
    public func path(for image: String) -> String { directory + "/" + Self.fileName(for: image) }

    /// `image`'s profile, or nil when none is kept. `image` may also be a kept profile's name
    /// (the sanitized reference, which sanitizes to itself).
    public func profile(for image: String) throws -> SeccompProfile? {
        let path = path(for: image)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try SeccompProfile(contentsOf: path)
    }

    /// Keeps `profile` for `image`, merged with the one kept (unless `replace`); returns what is kept.
    @discardableResult
    public func save(_ profile: SeccompProfile, for image: String, replace: Bool = false) throws -> SeccompProfile {
        do { try Directories.create(directory) } catch { throw ProfileError(source: error.path, message: error.reason) }
        let earlier = replace ? nil : try self.profile(for: image)
        let kept = earlier.map { SeccompProfile.merge([$0, profile]) } ?? profile
        // A profile kept without a count (put there by hand) counts as one run.
        let runs = earlier == nil ? 1 : (metadata(Self.fileName(for: image))?.runs ?? 1) + 1
        try kept.write(to: path(for: image))
        let meta = Metadata(image: image, runs: runs)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { try encoder.encode(meta).write(to: URL(fileURLWithPath: metadataPath(Self.fileName(for: image))), options: .atomic) } catch {
            throw ProfileError(source: metadataPath(Self.fileName(for: image)), message: "cannot write: \(error.localizedDescription)")
        }
        return kept
    }

    /// What is kept beside a profile: the image reference as given, the runs merged.
    struct Metadata: Codable {
        var image: String
        var runs: Int
    }

    private func metadataPath(_ file: String) -> String { directory + "/" + String(file.dropLast(5)) + ".meta" }

    private func metadata(_ file: String) -> Metadata? {
        FileManager.default.contents(atPath: metadataPath(file)).flatMap { try? JSONDecoder().decode(Metadata.self, from: $0) }
    }

    /// One kept profile: its file and what it allows.
    public struct Entry: Sendable, Equatable, Codable {
        /// The image reference as kept (sanitized): the file name without `.json`.
        public var name: String
        /// The file name (image reference, sanitized).
        public var file: String
        /// Syscall names allowed.
        public var allowed: Int
        /// The default action.
        public var defaultAction: String
        /// When the file was last written (a recording kept or merged into it).
        public var recordedAt: Date
        /// The image reference as given; nil for a profile put in the store by hand.
        public var image: String?
        /// Runs merged into the profile; nil for a profile put in the store by hand.
        public var runs: Int?
    }

    /// Every kept profile, by file name; a file that is not a profile is an error naming it.
    public func list() throws -> [Entry] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return try files.map { file in
            let path = directory + "/" + file
            let profile = try SeccompProfile(contentsOf: path)
            let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date(timeIntervalSince1970: 0)
            let meta = metadata(file)
            return Entry(name: String(file.dropLast(5)), file: file, allowed: profile.allowedNames.count,
                         defaultAction: profile.defaultAction, recordedAt: modified, image: meta?.image, runs: meta?.runs)
        }
    }
}
