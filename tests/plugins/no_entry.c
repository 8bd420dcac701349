/* A shared object that is not a plugin: it exports a function, but no prism_plugin_entry.
 * The loader must refuse it, naming the missing symbol. */
#include <prism/plugin.h>

PRISM_EXPORT int prism_not_a_plugin(void) { return 42; }
