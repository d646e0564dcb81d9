import EventSchemas
import Foundation
import SharedView
import TestSupport
import Testing
import Yams

/// The OpenAPI document and the running gateway agree: every operation of the document is served
/// (through the generated interface: the middleware saw its operation id) and answers with a
/// status the document lists for it; and Schemathesis finds no server error and no answer off the
/// document.
@Suite(.serialized) struct DocumentTests {
    struct Operation {
        var method: String
        var path: String
        var id: String
        var statuses: Set<Int>
    }

    static func operations() throws -> [Operation] {
        let text = try String(contentsOf: Repo.document, encoding: .utf8)
        guard let document = try Yams.load(yaml: text) as? [String: Any], let paths = document["paths"] as? [String: Any]
        else { throw SupportError("\(Repo.document.path) has no paths") }
        var result: [Operation] = []
        for (path, item) in paths {
            for (method, operation) in (item as? [String: Any]) ?? [:] {
                guard let operation = operation as? [String: Any], let id = operation["operationId"] as? String,
                    let responses = operation["responses"] as? [String: Any]
                else { continue }
                result.append(
                    Operation(
                        method: method.uppercased(), path: path, id: id, statuses: Set(responses.keys.compactMap { Int($0) })))
            }
        }
        return result.sorted { $0.id < $1.id }
    }

    @Test func everyOperationOfTheDocumentIsServedWithADocumentedStatus() async throws {
        let rig = try await GatewayRig()
        let operations = try Self.operations()
        #expect(operations.count == 9)
        for operation in operations {
            let path = operation.path.replacingOccurrences(of: "{applicationId}", with: "RA-2026-000001")
                .replacingOccurrences(of: "{subject}", with: GatewayTests.chen)
                .replacingOccurrences(of: "{group}", with: "datahub")
            let body: Data? =
                operation.method == "POST"
                ? submission("restaurant-opening", GatewayTests.restaurant("RA-2026-000001")).serialized() : nil
            for key in ["desk-key", nil] {
                let answer = try await rig.request(operation.method, path, key: key, body: body)
                #expect(
                    operation.statuses.contains(answer.status),
                    "\(operation.method) \(operation.path) answered \(answer.status), not one of \(operation.statuses.sorted())")
            }
        }
        // Each operation went through the generated interface's middleware under its operation id.
        let metrics = String(decoding: try await rig.request("GET", "/metrics").body, as: UTF8.self)
        for operation in operations where operation.id != "getMetrics" {
            #expect(
                metrics.contains("onewindow_gateway_request_duration_seconds_count{operation=\"\(operation.id)\""),
                "\(operation.id) was not served through the generated interface")
        }
        // A path the document does not have is not served.
        #expect(try await rig.request("GET", "/nothing-here", key: "desk-key").status == 404)
        await rig.stop()
    }

    /// Schemathesis (scripts/test-tools.sh installs it in .venv) against a live gateway holding an
    /// application the orchestrator took up: no server error, every answer as documented.
    @Test(.timeLimit(.minutes(3))) func schemathesisFindsNothingOffTheDocument() async throws {
        let tool = repositoryRoot.appendingPathComponent(".venv/bin/schemathesis")
        try #require(
            FileManager.default.isExecutableFile(atPath: tool.path),
            "Schemathesis is not installed: run scripts/test-tools.sh (make test does)")
        let rig = try await GatewayRig()
        let id = "RA-2026-000001"
        #expect(
            try await rig.json(
                "POST", "/applications", key: "desk-key", body: submission("restaurant-opening", GatewayTests.restaurant(id))
            ).status == 202)
        try await rig.runOrchestrator()
        try await rig.gateway.catchUp()
        // The shared view exists (a gateway without one answers 503, a server error to Schemathesis).
        _ = try await SharedViewStore(path: rig.viewPath).facts(
            about: GatewayTests.chen, reader: "orchestrator", reason: "\(id) materials")
        let output = try await runProgram(
            repositoryRoot.appendingPathComponent("scripts/schemathesis.sh").path,
            ["http://127.0.0.1:\(rig.port)", "desk-key"], timeout: .seconds(150))
        let printed = String(decoding: output.output + output.error, as: UTF8.self)
        #expect(output.status == 0, "schemathesis failed:\n\(printed.suffix(6000))")
        await rig.stop()
    }
}
