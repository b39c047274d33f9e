# Install: headers, both libraries, the export set droppath::droppath(_static),
# droppathConfig.cmake + version file, and droppath.pc.
include(CMakePackageConfigHelpers)

install(TARGETS droppath droppath_static EXPORT droppathTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/droppath/droppath.h
              ${PROJECT_BINARY_DIR}/include/droppath/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/droppath)

set(DP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/droppath)
install(EXPORT droppathTargets NAMESPACE droppath:: DESTINATION ${DP_CMAKE_DIR})
configure_package_config_file(cmake/droppathConfig.cmake.in
  ${PROJECT_BINARY_DIR}/droppathConfig.cmake INSTALL_DESTINATION ${DP_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/droppathConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/droppathConfig.cmake ${PROJECT_BINARY_DIR}/droppathConfigVersion.cmake
        DESTINATION ${DP_CMAKE_DIR})

if(DP_HAVE_OPENMP)
  set(DP_PC_LIBS_PRIVATE "${OpenMP_C_FLAGS} -lpthread -lm")
else()
  set(DP_PC_LIBS_PRIVATE "-lpthread -lm")
endif()
configure_file(cmake/droppath.pc.in ${PROJECT_BINARY_DIR}/droppath.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/droppath.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
