import Foundation
import VigilDaemon
import VigilTestSupport
import XCTest
import Yams

/// docs/api/openapi.yaml against the running daemon: every documented operation answers with
/// its documented status and a body of the documented shape, and every route is documented.
final class OpenAPITests: XCTestCase {
    static let documentPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../docs/api/openapi.yaml").standardized.path

    static let methods = ["get", "post", "put", "delete", "patch"]

    func document() throws -> [String: Any] {
        let text = try String(contentsOfFile: Self.documentPath, encoding: .utf8)
        return try XCTUnwrap(try Yams.load(yaml: text) as? [String: Any], "the document is a YAML mapping")
    }

    func testEveryRouteOfTheServerIsDocumentedAndNothingElse() throws {
        let paths = try XCTUnwrap(try document()["paths"] as? [String: Any])
        var documented: Set<String> = []
        for (path, item) in paths {
            for method in Self.methods where (item as? [String: Any])?[method] != nil { documented.insert("\(method.uppercased()) \(path)") }
        }
        XCTAssertEqual(documented, Set(APIRouter.routes.map(\.description)))
    }

    static let exampleProfile = """
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
         "syscalls": [{"names": ["exit_group", "read", "write"], "action": "SCMP_ACT_ALLOW"}]}
        """

    /// POST /v1/bundles's body for examples/bundles/signals.
    static func bundleUpload() throws -> String {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/bundles/signals").path
        let upload = ["manifest": try String(contentsOfFile: directory + "/bundle.yaml", encoding: .utf8),
                      "object": try Data(contentsOf: URL(fileURLWithPath: directory + "/signals.bpf.o")).base64EncodedString()]
        return String(decoding: try JSONSerialization.data(withJSONObject: upload), as: UTF8.self)
    }

    func testEveryOperationAnswersAsDocumented() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let doc = try document()
        let schemas = Schemas(document: doc)
        // A kept seccomp profile for GET /v1/seccomp/profiles/{image}'s example.
        let directory = NSTemporaryDirectory() + "vigil-daemon-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory + "/state/seccomp", withIntermediateDirectories: true)
        try Self.exampleProfile.write(toFile: directory + "/state/seccomp/openapi-example.json", atomically: true, encoding: .utf8)
        let daemon = try TestDaemon(directory: directory)
        let paths = try XCTUnwrap(doc["paths"] as? [String: [String: Any]])
        var operations: [(method: String, path: String, item: [String: Any], operation: [String: Any])] = []
        for (path, item) in paths {
            for method in Self.methods { if let operation = item[method] as? [String: Any] { operations.append((method, path, item, operation)) } }
        }
        // Create first, read, then delete.
        let rank = ["post": 0, "get": 1, "delete": 2]
        operations.sort { (rank[$0.method] ?? 1, $0.path) < (rank[$1.method] ?? 1, $1.path) }
        XCTAssertFalse(operations.isEmpty)

        for (method, path, item, operation) in operations {
            let name = "\(method.uppercased()) \(path)"
            let parameters = ((item["parameters"] as? [Any] ?? []) + (operation["parameters"] as? [Any] ?? [])).compactMap { schemas.resolve($0) as? [String: Any] }
            let responses = try XCTUnwrap(operation["responses"] as? [String: Any], name)
            // The success status: the first 2xx documented (201 before 200 for a create).
            let success = try XCTUnwrap(responses.keys.filter { $0.hasPrefix("2") }.sorted { ($0 == "201" ? 0 : 1, $0) < ($1 == "201" ? 0 : 1, $1) }.first, name)
            var pathValues: [String: String] = [:], query: [String: String] = [:]
            for parameter in parameters {
                guard let key = parameter["name"] as? String, let example = parameter["example"] else { continue }
                if parameter["in"] as? String == "path" { pathValues[key] = "\(example)" } else { query[key] = "\(example)" }
            }
            // A bundle's example is the real example bundle (its object is too long for the document).
            let body = operation["operationId"] as? String == "createBundle" ? try Self.bundleUpload()
                : ((operation["requestBody"] as? [String: Any])?["content"] as? [String: Any])?.values
                    .compactMap { ($0 as? [String: Any])?["example"] as? String }.first
            let streaming = ((schemas.resolve(responses[success]) as? [String: Any])?["content"] as? [String: Any])?["application/x-ndjson"] != nil
            let answer = try send(daemon, method, path, pathValues, query, body, streaming: streaming)
            XCTAssertEqual(String(answer.status), success, "\(name): \(answer.body)")
            check(answer.body, against: schemas.resolve(responses[success]), schemas, streaming: streaming, name)

            for (status, response) in responses where !status.hasPrefix("2") {
                guard let response = schemas.resolve(response) as? [String: Any], let request = response["x-test-request"] as? [String: Any] else { continue }
                var errorPath = pathValues, errorQuery = query
                for (k, v) in request["path"] as? [String: Any] ?? [:] { errorPath[k] = "\(v)" }
                if let q = request["query"] as? [String: Any] { errorQuery = q.mapValues { "\($0)" } }
                let failed = try send(daemon, method, path, errorPath, errorQuery, request["body"] as? String ?? body, streaming: false)
                XCTAssertEqual(String(failed.status), status, "\(name) (x-test-request of \(status)): \(failed.body)")
                check(failed.body, against: response, schemas, streaming: false, "\(name) \(status)")
            }
        }
    }

    /// Sends one request; a stream is read for a few seconds while activity is made for it.
    func send(_ daemon: TestDaemon, _ method: String, _ template: String, _ pathValues: [String: String], _ query: [String: String],
              _ body: String?, streaming: Bool) throws -> (status: Int, body: String) {
        var path = template
        for (key, value) in pathValues { path = path.replacingOccurrences(of: "{\(key)}", with: DaemonClient.queryValue(value)) }
        if !query.isEmpty {
            path += "?" + query.sorted { $0.key < $1.key }.map { "\($0.key)=\(DaemonClient.queryValue($0.value))" }.joined(separator: "&")
        }
        guard streaming else { return try daemon.request(method.uppercased(), path, body: body) }
        // Exec a copy of true from /tmp (an exec event, and the default rule for programs run
        // from a temporary directory alerts) while the stream is open.
        let program = NSTemporaryDirectory() + "vigil-openapi-\(UUID().uuidString.prefix(8))"
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: program)
        defer { try? FileManager.default.removeItem(atPath: program) }
        let stop = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while stop.wait(timeout: .now() + 0.1) == .timedOut { try? runProgram(program, []) }
        }
        defer { stop.signal() }
        return try daemon.request(method.uppercased(), path, extraCurlArguments: ["--max-time", "5"])
    }

    func check(_ body: String, against response: Any?, _ schemas: Schemas, streaming: Bool, _ name: String) {
        guard let content = (response as? [String: Any])?["content"] as? [String: Any] else {
            XCTAssertEqual(body, "", "\(name): documented without a body")
            return
        }
        let type = streaming ? "application/x-ndjson" : "application/json"
        guard let schema = (content[type] as? [String: Any])?["schema"] else {
            XCTFail("\(name): no \(type) schema documented")
            return
        }
        let documents = streaming ? body.split(separator: "\n").map(String.init) : [body]
        XCTAssertFalse(documents.isEmpty, "\(name): the stream delivered something")
        for text in documents {
            guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
                XCTFail("\(name): not JSON: \(text.prefix(300))")
                continue
            }
            for problem in schemas.validate(value, schema, at: "$") { XCTFail("\(name): \(problem)") }
        }
    }
}

/// A small JSON Schema checker for the OpenAPI subset the document uses: $ref, allOf, type,
/// required, properties, items, enum.
struct Schemas {
    let document: [String: Any]

    /// Follows a `$ref` (to #/components/...).
    func resolve(_ value: Any?) -> Any? {
        guard let object = value as? [String: Any], let ref = object["$ref"] as? String else { return value }
        var node: Any? = document
        for part in ref.dropFirst(2).split(separator: "/") { node = (node as? [String: Any])?[String(part)] }
        return resolve(node)
    }

    func validate(_ value: Any, _ schema: Any, at path: String) -> [String] {
        guard let schema = resolve(schema) as? [String: Any] else { return ["\(path): unresolvable schema"] }
        var problems: [String] = []
        if let all = schema["allOf"] as? [Any] { for part in all { problems += validate(value, part, at: path) } }
        if let type = schema["type"] as? String {
            let ok: Bool
            switch type {
            case "object": ok = value is [String: Any]
            case "array": ok = value is [Any]
            case "string": ok = value is String
            // JSONSerialization gives NSNumbers; a JSON boolean has the Objective-C type "c".
            case "boolean": ok = (value as? NSNumber).map { String(cString: $0.objCType) == "c" } ?? false
            case "integer": ok = (value as? NSNumber).map { !["c", "d", "f"].contains(String(cString: $0.objCType)) } ?? false
            case "number": ok = (value as? NSNumber).map { String(cString: $0.objCType) != "c" } ?? false
            default: ok = true
            }
            if !ok { return problems + ["\(path): expected \(type), got \(String(describing: value).prefix(80))"] }
        }
        if let choices = schema["enum"] as? [Any], let text = value as? String, !choices.map({ "\($0)" }).contains(text) {
            problems.append("\(path): '\(text)' is not one of \(choices)")
        }
        if let object = value as? [String: Any] {
            for key in schema["required"] as? [String] ?? [] where object[key] == nil { problems.append("\(path): missing '\(key)'") }
            for (key, property) in schema["properties"] as? [String: Any] ?? [:] {
                if let field = object[key], !(field is NSNull) { problems += validate(field, property, at: "\(path).\(key)") }
            }
        }
        if let array = value as? [Any], let items = schema["items"] {
            for (index, item) in array.enumerated() { problems += validate(item, items, at: "\(path)[\(index)]") }
        }
        return problems
    }
}
