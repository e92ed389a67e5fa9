package admin

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/workers"
)

type exportRequest struct {
	Format string `json:"format"`
	CSV    *struct {
		Fields []string `json:"fields"`
	} `json:"csv"`
}

// exportJobBody is a job with its download link once completed.
type exportJobBody struct {
	workers.ExportJob
	DownloadURL string `json:"download_url,omitempty"`
}

func (s *Server) exportBody(j workers.ExportJob) exportJobBody {
	b := exportJobBody{ExportJob: j}
	if j.Status == "completed" {
		b.DownloadURL = s.Service.Config().PublicURL + "/admin/users/export/" + j.ID + "/download"
	}
	return b
}

// adminCreateExport is POST /admin/users/export: queue an export job.
func (s *Server) adminCreateExport(w http.ResponseWriter, r *http.Request) {
	var req exportRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	var fields []string
	if req.CSV != nil {
		if req.Format != workers.FormatCSV {
			s.WriteAPIError(w, r, httpx.BadRequest("InvalidExportField", "invalid_request", "csv options go with format csv"))
			return
		}
		fields = req.CSV.Fields
	}
	j, err := s.Exports.Create(r.Context(), req.Format, fields)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/users/export/"+j.ID)
	httpx.WriteJSON(w, http.StatusAccepted, s.exportBody(j))
}

// adminGetExport is GET /admin/users/export/{id}: status and progress.
func (s *Server) adminGetExport(w http.ResponseWriter, r *http.Request) {
	j, err := s.Exports.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, s.exportBody(j))
}

// adminDownloadExport is GET /admin/users/export/{id}/download: the file.
func (s *Server) adminDownloadExport(w http.ResponseWriter, r *http.Request) {
	j, file, err := s.Exports.Open(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	defer file.Close()
	// A large file may take longer than the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Hour))
	ct, ext := "application/x-ndjson", ".ndjson"
	if j.Format == workers.FormatCSV {
		ct, ext = "text/csv; charset=utf-8", ".csv"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", `attachment; filename="users-`+j.ID+ext+`"`)
	if j.Bytes != nil {
		w.Header().Set("Content-Length", strconv.FormatInt(*j.Bytes, 10))
	}
	if _, err := io.Copy(w, file); err != nil {
		s.Log.Warn("export download interrupted", "export_id", j.ID, "error", err)
	}
}
