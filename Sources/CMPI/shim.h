// Open MPI's C API (Debian: libopenmpi-dev; pkg-config ompi-c). mpi.h spells its predefined
// handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM...) as macros over casts of global symbols, which
// Swift cannot import; these inline functions hand them over as values.
#include <mpi.h>

static inline MPI_Comm sskd_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm sskd_mpi_comm_self(void) { return MPI_COMM_SELF; }
static inline MPI_Datatype sskd_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype sskd_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype sskd_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype sskd_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Op sskd_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op sskd_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op sskd_mpi_min(void) { return MPI_MIN; }
static inline MPI_Errhandler sskd_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline void *sskd_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int sskd_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int sskd_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
