/* CVigilABI is header-only; this file gives SwiftPM a source to build the module from. */
#include "vigil_abi.h"
