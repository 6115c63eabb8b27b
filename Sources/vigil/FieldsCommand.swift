import ArgumentParser
import VigilEvents

/// `vigil fields`: the field catalogue.
struct FieldsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fields", abstract: "List the event fields rules and outputs can use.")

    @Flag(help: "Print docs/fields.md (Markdown).") var markdown = false

    func run() {
        if markdown {
            print(Fields.markdown(), terminator: "")
            return
        }
        for field in Fields.all {
            let name = field.takesArgument ? "\(field.name)[...]" : field.name
            print(name + String(repeating: " ", count: max(1, 24 - name.count)) + field.type.rawValue.padding(8) + field.description)
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}
