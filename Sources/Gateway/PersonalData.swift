import AccessControl
import EventModel

/// The one way personal data leaves the gateway in an answer.
///
/// Every resident ID number, unified social credit code, name or mobile number the gateway returns
/// goes through ``disclose(_:as:to:)``. Masking applies when the principal lacks the
/// `personal-data` grant (``Grant/personalData``): ID numbers keep their region and last four
/// characters, mobiles their first three and last four, names their family name (the masks of
/// `EventModel.Masking`, which logs and the CLI use too). A principal always sees its own subject
/// (an applicant their own ID number) unmasked: it is what their key is bound to.
enum PersonalData {
    /// The kinds of personal data, each with its mask.
    enum Kind: Sendable {
        /// A resident ID number or a credit code (anything 18 characters long that names someone).
        case identifier
        case name
        case mobile
    }

    /// `value` as `principal` may see it.
    static func disclose(_ value: String, as kind: Kind, to principal: Principal) -> String {
        if principal.grants.contains(.personalData) || (principal.subject != nil && principal.subject == value) {
            return value
        }
        switch kind {
        case .identifier: return Masking.subject(value)
        case .name: return Masking.name(value)
        case .mobile: return Masking.phone(value)
        }
    }
}
