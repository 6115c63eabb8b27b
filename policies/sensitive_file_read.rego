# Ported from rules/default.yaml, "Sensitive file read": the rule's exception
# (`not proc.name in (sensitive_file_readers)`) moved out of the rule into a policy that
# Vigil's policy stage asks (docs/policy.md). Run the rule without its exception and let
# this policy decide whether an alert's actions run; the decision's `reason` is added to
# the alert's output. Extra: an allow-list of container images whose programs may read
# those files (empty here: fill it for your fleet).
#
#   actions:
#     policy:
#       url: http://127.0.0.1:8181
#       path: vigil/sensitive_file_read/decision
#       rules: [Sensitive file read]
package vigil.sensitive_file_read

import rego.v1

# The default rules' sensitive_file_readers list.
trusted_readers := {
	"sshd", "sudo", "su", "login", "passwd", "chpasswd", "chage", "unix_chkpwd", "useradd",
	"usermod", "userdel", "groupadd", "vipw", "systemd", "systemd-logind", "cron", "crond",
	"polkitd", "sssd", "nscd", "accounts-daemon", "ssh-keygen", "vigil",
}

# Container images (repository, without the tag) whose programs may read sensitive files.
trusted_images := set()

fields := input.output_fields

trusted_reader if fields["proc.name"] in trusted_readers

trusted_image if fields["container.image.repository"] in trusted_images

default allow := true

default reason := "no process name in the alert"

allow := false if trusted_reader

allow := false if trusted_image

reason := sprintf("%s is a known reader of sensitive files", [fields["proc.name"]]) if trusted_reader

reason := sprintf("image %s is trusted", [fields["container.image.repository"]]) if {
	not trusted_reader
	trusted_image
}

reason := sprintf("%s is not a known reader of sensitive files", [fields["proc.name"]]) if allow

decision := {"allow": allow, "reason": reason}
