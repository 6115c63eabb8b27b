/* The options of sanitizer builds (make sanitize, scripts/sanitize.sh, FUZZING.md "Sanitizers"),
 * compiled in: the sanitizer runtimes call these before they read ASAN_OPTIONS / TSAN_OPTIONS, so
 * an instrumented vigil started without the environment (in the container image under
 * ImageTests, by hand) runs as the test process does. A normal build never calls them. */

/* LeakSanitizer does not follow the pointers Swift keeps with tag bits in enum payloads and
 * reports live objects as leaked (FUZZING.md); leaks are not what these runs look for. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0:allocator_may_return_null=1";
}

/* sanitize/tsan.supp: the false positives of Swift's Synchronization.Mutex (the file says why). */
static const char tsan_suppressions[] = {
#embed "../../sanitize/tsan.supp"
    , 0
};

const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return tsan_suppressions;
}
