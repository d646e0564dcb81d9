import EventSchemas
import Logging

/// A log handler that masks personal data (``PersonalData``) in each line's message and metadata
/// before the wrapped handler writes it: resident ID and mobile numbers wherever they stand, and
/// metadata values by their key (`residentId`, `mobile`, `applicantName`…). Logs never need the
/// unmasked values, so no option lifts it.
public struct MaskingLogHandler: LogHandler {
    /// The handler that writes the masked lines.
    public var wrapped: any LogHandler

    public init(wrapping handler: any LogHandler) {
        wrapped = handler
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { wrapped.metadataProvider }
        set { wrapped.metadataProvider = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var masked = event
        masked.message = Logger.Message(stringLiteral: PersonalData.maskText(event.message.description))
        masked.metadata = event.metadata.map { Self.mask($0) }
        // The handler's own metadata and its provider's are merged by the wrapped handler: mask
        // them by handing it a copy whose metadata is masked.
        var handler = wrapped
        if !handler.metadata.isEmpty { handler.metadata = Self.mask(handler.metadata) }
        if let provider = handler.metadataProvider {
            handler.metadataProvider = Logger.MetadataProvider { Self.mask(provider.get()) }
        }
        handler.log(event: masked)
    }

    static func mask(_ metadata: Logger.Metadata) -> Logger.Metadata {
        metadata.reduce(into: [:]) { result, entry in result[entry.key] = mask(entry.value, key: entry.key) }
    }

    static func mask(_ value: Logger.Metadata.Value, key: String) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): return .string(PersonalData.maskField(key, text))
        case .stringConvertible(let convertible): return .string(PersonalData.maskField(key, convertible.description))
        case .dictionary(let dictionary): return .dictionary(mask(dictionary))
        case .array(let values): return .array(values.map { mask($0, key: key) })
        }
    }
}
