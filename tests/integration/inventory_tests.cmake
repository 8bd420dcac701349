# The inventory service (docs/inventory.md): its rules and settings in-process, then the
# plugin end to end in a real prismd over the embedded sqlite store.
if(TARGET prism-plugin-inventory)
  prism_add_gtest(inventory_ledger_test
    SOURCES unit/inventory_ledger_test.cpp unit/inventory_settings_test.cpp
    LIBS prism-inventory-core)

  prism_add_gtest(inventory_test
    SOURCES integration/inventory_test.cpp integration/prismd_process.cpp
    LIBS prism-client prism-host prism-proto-inventory Threads::Threads)
  add_dependencies(inventory_test prismd prism-plugin-inventory)
endif()
