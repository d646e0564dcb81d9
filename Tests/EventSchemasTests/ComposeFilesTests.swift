import ConfigFiles
import Foundation
import Testing

/// compose.yaml and its SASL override are read by no test run otherwise (the machines have no
/// Docker engine): they must at least parse, and every process on the bus must get its
/// principal's properties file under SASL.
@Suite("Compose files")
struct ComposeFilesTests {
    let root = schemasDirectory.deletingLastPathComponent()

    func services(_ file: String) throws -> ConfigMapping {
        let document = try ConfigNode.load(path: root.appendingPathComponent(file).path).mapping()
        return try document.require("services").mapping()
    }

    @Test func everyProcessOnTheBusHasItsPrincipalUnderSASL() throws {
        let base = try services("compose.yaml")
        let sasl = try services("compose.sasl.yaml")
        let script = try String(contentsOf: root.appendingPathComponent("scripts/kafka-security.sh"), encoding: .utf8)
        let hub = ["orchestrator", "topics", "gateway", "audit-recorder"]
        let onBus = base.keys.filter { $0.hasPrefix("connector-") || hub.contains($0) }
        #expect(onBus.count >= 14)
        for service in onBus {
            let environment = try sasl[service]?.mapping()["environment"]?.mapping()
            let file = try environment?["ONEWINDOW_KAFKA_CONFIG"]?.string()
            let user: String
            switch service {
            case "topics": user = "onewindow-admin"
            case "orchestrator": user = "onewindow-orchestrator"
            case "gateway": user = "onewindow-gateway"
            case "audit-recorder": user = "onewindow-audit"
            default: user = service
            }
            #expect(file == "/clients/\(user).properties", "\(service) in compose.sasl.yaml")
            let department = String(user.dropFirst("connector-".count))
            let created =
                script.contains("user \(user)") || (user.hasPrefix("connector-") && script.contains("[\(department)]="))
            #expect(created, "scripts/kafka-security.sh creates no SCRAM user \(user)")
        }
        let kafka = try sasl.require("kafka").mapping()
        #expect(try kafka.require("environment").mapping()["KAFKA_SASL_ENABLED_MECHANISMS"]?.string() == "SCRAM-SHA-512")
        #expect(sasl["kafka-security"] != nil)
    }
}
