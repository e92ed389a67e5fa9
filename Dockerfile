# idstream server image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/idstream ./cmd/idstream

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/idstream /idstream
EXPOSE 8080
ENTRYPOINT ["/idstream"]
CMD ["serve"]
